"""Users, roles, tokens, grid assignments, shift calendars and crews."""
