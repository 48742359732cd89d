"""seqengine_x: channel executors (work in progress)."""
