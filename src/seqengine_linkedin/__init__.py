"""seqengine_linkedin: channel executors (work in progress)."""
