"""Automation API entry points: `python -m automation <command>`, each command also a function.

See `automation/cli.py` for the commands. Importing this package is cheap: the Automation
API, Docker and bundle code load only when a command needs them.
"""
