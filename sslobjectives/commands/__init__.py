"""The researcher's daily-loop subcommands of ``sslobj``: ``train``, ``config``, ``export`` and
``eval``, one module each. Each module's ``add_parser(sub)`` registers its subcommand and
imports nothing heavy (torch is imported when the command runs, so ``--help`` stays fast).
"""
