"""Per-purpose, per-object random streams.

Every random draw in a map run comes from a generator seeded by (run seed, object or
chunk id, purpose) and nothing else, so results never depend on worker count, batch
position or timing. ``purpose`` keeps streams for different jobs (placement, k,
tile noise) independent even for the same object.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(run_seed: int, index: int, purpose: str = "") -> int:
    """A 63-bit seed that depends only on (run_seed, index, purpose)."""
    if run_seed < 0 or index < 0:
        raise ValueError("seeds and indices must be non-negative")
    seq = np.random.SeedSequence([int(run_seed), int(index), zlib.crc32(purpose.encode())])
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def derive_rng(run_seed: int, index: int, purpose: str = "") -> np.random.Generator:
    """A numpy generator for (run_seed, index, purpose); see :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(run_seed, index, purpose))


# --- many indices at once -----------------------------------------------------------------
#
# The planner derives several streams for every object (60,000 objects: 360,000 seeds at
# ~30 us each through SeedSequence, mostly numpy call overhead around a few dozen 32-bit
# multiplies). The functions below do the same arithmetic on arrays of indices: numpy's
# SeedSequence hash (O'Neill's seed_seq with a 4-word pool) and, for derive_uniforms,
# PCG64's seeding and first output. They give exactly what the scalar functions give (a
# test compares them over many inputs), so using them changes no map.

_POOL_SIZE = 4
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_PCG_MULT = (np.uint64(2549297995355413924), np.uint64(4865540595714422341))  # (high, low) 64 bits
_U32_16, _U64_32, _U64_MASK32 = np.uint32(16), np.uint64(32), np.uint64(0xFFFFFFFF)


def _int_words(n: int) -> list[int]:
    """An int as SeedSequence takes it: little-endian 32-bit words, [0] for 0."""
    out = [n & 0xFFFFFFFF]
    n >>= 32
    while n:
        out.append(n & 0xFFFFFFFF)
        n >>= 32
    return out


def _constants(start: int, mult: int, n: int) -> list[np.uint32]:
    """c_0 = start, c_{k+1} = c_k * mult (mod 2^32): the hash constant does not depend on the data."""
    out, c = [], start
    for _ in range(n):
        out.append(np.uint32(c))
        c = (c * mult) & 0xFFFFFFFF
    return out


def _pools(entropy: list[np.ndarray]) -> list[np.ndarray]:
    """SeedSequence's mixed pool (4 uint32 arrays) for columns of entropy words."""
    n_hash = _POOL_SIZE * _POOL_SIZE + _POOL_SIZE * max(0, len(entropy) - _POOL_SIZE)
    c = _constants(_INIT_A, _MULT_A, n_hash + 1)
    k = 0

    def hashmix(value: np.ndarray) -> np.ndarray:  # value ^= c_k; value *= c_{k+1}; xorshift
        nonlocal k
        value = (value ^ c[k]) * c[k + 1]
        k += 1
        return value ^ (value >> _U32_16)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = _MIX_MULT_L * x - _MIX_MULT_R * y
        return r ^ (r >> _U32_16)

    zero = np.zeros_like(entropy[0])
    pool = [hashmix(entropy[i] if i < len(entropy) else zero) for i in range(_POOL_SIZE)]
    for src in range(_POOL_SIZE):
        for dst in range(_POOL_SIZE):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for value in entropy[_POOL_SIZE:]:
        for dst in range(_POOL_SIZE):
            pool[dst] = mix(pool[dst], hashmix(value))
    return pool


def _state_u64(pool: list[np.ndarray], n_u64: int) -> list[np.ndarray]:
    """``SeedSequence.generate_state(n_u64, np.uint64)`` for every pool column."""
    c = _constants(_INIT_B, _MULT_B, 2 * n_u64 + 1)
    words = []
    for i in range(2 * n_u64):
        value = (pool[i % _POOL_SIZE] ^ c[i]) * c[i + 1]
        words.append((value ^ (value >> _U32_16)).astype(np.uint64))
    return [words[2 * j] | (words[2 * j + 1] << _U64_32) for j in range(n_u64)]


def _word_groups(values: np.ndarray):
    """(mask, words) for the values SeedSequence hashes as one 32-bit word (< 2^32), then as two."""
    small = values <= _U64_MASK32
    for mask, n_words in ((small, 1), (~small, 2)):
        if mask.any():
            v = values[mask]
            words = [(v & _U64_MASK32).astype(np.uint32)]
            if n_words == 2:
                words.append((v >> _U64_32).astype(np.uint32))
            yield mask, words


def derive_seeds(run_seed: int, indices: np.ndarray, purpose: str = "") -> np.ndarray:
    """``[derive_seed(run_seed, i, purpose) for i in indices]`` as a uint64 array, in one pass."""
    indices = np.asarray(indices)
    if run_seed < 0 or (indices.size and indices.min() < 0):
        raise ValueError("seeds and indices must be non-negative")
    head = _int_words(int(run_seed))
    tail = zlib.crc32(purpose.encode())
    out = np.empty(indices.shape, np.uint64)
    for mask, words in _word_groups(indices.astype(np.uint64)):
        n = words[0].shape
        entropy = [np.full(n, w, np.uint32) for w in head] + words + [np.full(n, tail, np.uint32)]
        out[mask] = _state_u64(_pools(entropy), 1)[0] >> np.uint64(1)
    return out


def _mul128(hi: np.ndarray, lo: np.ndarray, m: tuple[np.uint64, np.uint64]) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) * m mod 2^128, with 64-bit halves (the low product split into 32-bit limbs)."""
    m_hi, m_lo = m
    a1, a0 = lo >> _U64_32, lo & _U64_MASK32
    b1, b0 = m_lo >> _U64_32, m_lo & _U64_MASK32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> _U64_32) + (p01 & _U64_MASK32) + (p10 & _U64_MASK32)
    out_lo = (p00 & _U64_MASK32) | (mid << _U64_32)
    out_hi = p11 + (p01 >> _U64_32) + (p10 >> _U64_32) + (mid >> _U64_32) + hi * m_lo + lo * m_hi
    return out_hi, out_lo


def _add128(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lo = a[1] + b[1]
    return a[0] + b[0] + (lo < a[1]).astype(np.uint64), lo


def derive_uniforms(run_seed: int, indices: np.ndarray, purpose: str = "") -> np.ndarray:
    """``[derive_rng(run_seed, i, purpose).random() for i in indices]`` as a float64 array, in one pass.

    ``default_rng(seed)`` seeds PCG64 from ``SeedSequence(seed).generate_state(4, uint64)``
    = (initstate high, low, initseq high, low): inc = 2 * initseq + 1; state = inc
    (one step from 0); state += initstate and step; the draw steps once more and outputs
    XSL-RR; ``random()`` keeps the top 53 bits.
    """
    seeds = derive_seeds(run_seed, indices, purpose)
    a, b, c, d = (np.empty(seeds.shape, np.uint64) for _ in range(4))
    for mask, words in _word_groups(seeds):
        a[mask], b[mask], c[mask], d[mask] = _state_u64(_pools(words), 4)
    one = np.uint64(1)
    inc = ((c << one) | (d >> np.uint64(63)), (d << one) | one)
    state = _add128(inc, (a, b))  # the state is inc after the first step from 0; add initstate
    state = _add128(_mul128(*state, _PCG_MULT), inc)
    hi, lo = _add128(_mul128(*state, _PCG_MULT), inc)  # the draw's own step
    value, rot = hi ^ lo, hi >> np.uint64(58)
    out = (value >> rot) | (value << ((np.uint64(64) - rot) & np.uint64(63)))
    return (out >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
