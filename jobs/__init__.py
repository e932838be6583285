"""Entry points for `ray job submit` (train, make_map, ...)."""
