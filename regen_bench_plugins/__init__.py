"""First-party regen-bench plugins, each registered through the ``regen_bench`` entry points."""
