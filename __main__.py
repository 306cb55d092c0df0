"""homelab: load and validate the stack config, build the enabled layers, export outputs."""

from stacks.program import main

main()
