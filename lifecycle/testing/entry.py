"""What the ``pytest11`` entry point ``lifecycle`` loads: it brings in
``lifecycle.testing`` by name, so that ``-p lifecycle.testing`` on top of the
entry point finds the plugin already there instead of registering it twice."""

pytest_plugins = ["lifecycle.testing"]
