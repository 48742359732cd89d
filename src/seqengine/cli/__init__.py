"""The ``seqengine`` command line's commands (the entry point is ``seqengine._cli:main``).

The top layer: commands that drive the runtime, the simulation and the console for a person
at a terminal. Nothing below imports this package.
"""

from seqengine.cli._commands import add_runtime_commands
from seqengine.cli._operator import add_operator_commands, status_of

__all__ = ["add_operator_commands", "add_runtime_commands", "status_of"]
