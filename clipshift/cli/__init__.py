"""The `clipshift` command: thin argument parsing over the library; heavy imports happen lazily."""
