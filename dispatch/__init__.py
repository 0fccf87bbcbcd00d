"""griddispatch: incidents, routing, people, REST API, live push and CLI on top of `grids`."""
