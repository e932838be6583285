"""Ray actors and tasks: tile samplers and chunk compositors. The only Ray-aware code besides jobs/."""
