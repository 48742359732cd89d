"""seqengine_email: channel executors (work in progress)."""
