"""The area tree as geometries: validation, coordinate systems, storage, import/export, locate.

A small library with no knowledge of incidents or of Flask, so it can be tested and
benchmarked on its own.
"""

# Top to bottom. A child's level is always the next one down, except that a tree may
# start at any level (a file of grids only is a valid import under existing communities).
LEVELS: tuple[str, ...] = ("district", "street", "community", "grid", "building", "unit")


def level_rank(level: str) -> int:
    """Depth of a level in the tree (district = 0)."""
    return LEVELS.index(level)
