"""SLA clocks: deadlines per phase, amber/red states and escalation up the area tree."""
