"""Local fakes of platform APIs for the runtime tests (real processes, real HTTP)."""
