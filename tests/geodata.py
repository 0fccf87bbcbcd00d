"""A small hand-made area tree near 夫子庙, for tests that need exact, known answers.

Offsets are in thousandths of a degree from (118.78, 32.03): one unit is about 94 m
east-west and 111 m north-south.

    district 320104 [0,4]x[0,2]
      street 320104001 [0,2]x[0,2] > community 320104001001 > grids G1 [0,1]x[0,2], G2 [1,2]x[0,2]
      street 320104002 [2,4]x[0,2] > community 320104002001 > grid  G3 [2,4]x[0,2]
    B1 in G1 with units B1-1, B1-2; B2 straddles G1|G2 (two thirds in G2); B3 in G3.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry import box

LON0, LAT0 = 118.78, 32.03
UNIT = 0.001


def at(x: float, y: float) -> tuple[float, float]:
    """WGS84 lon/lat of an offset."""
    return LON0 + x * UNIT, LAT0 + y * UNIT


def square(x0: float, y0: float, x1: float, y1: float):
    (a, b), (c, d) = at(x0, y0), at(x1, y1)
    return box(a, b, c, d)


G1, G2, G3 = "320104001001001", "320104001001002", "320104002001001"

ROWS = [
    ("320104", "秦淮区", "district", None, (0, 0, 4, 2)),
    ("320104001", "秦虹街道", "street", "320104", (0, 0, 2, 2)),
    ("320104002", "夫子庙街道", "street", "320104", (2, 0, 4, 2)),
    ("320104001001", "中牌楼社区", "community", "320104001", (0, 0, 2, 2)),
    ("320104002001", "钓鱼台社区", "community", "320104002", (2, 0, 4, 2)),
    (G1, "中牌楼社区第1网格", "grid", "320104001001", (0, 0, 1, 2)),
    (G2, "中牌楼社区第2网格", "grid", "320104001001", (1, 0, 2, 2)),
    (G3, "钓鱼台社区第1网格", "grid", "320104002001", (2, 0, 4, 2)),
    ("B1", "1号楼", "building", G1, (0.2, 0.2, 0.6, 0.6)),
    ("B2", "2号楼", "building", G2, (0.8, 1.0, 1.4, 1.4)),
    ("B3", "3号楼", "building", G3, (2.5, 0.5, 3.0, 1.0)),
    ("B1-1", "1单元", "unit", "B1", (0.2, 0.2, 0.4, 0.6)),
    ("B1-2", "2单元", "unit", "B1", (0.4, 0.2, 0.6, 0.6)),
]


def tree_frame() -> gpd.GeoDataFrame:
    """The whole tree as a GeoDataFrame in EPSG:4326, parents first."""
    return gpd.GeoDataFrame(
        {
            "code": [r[0] for r in ROWS],
            "name": [r[1] for r in ROWS],
            "level": [r[2] for r in ROWS],
            "parent_code": [r[3] for r in ROWS],
            "floors": [6 if r[2] == "building" else None for r in ROWS],
        },
        geometry=[square(*r[4]) for r in ROWS],
        crs="EPSG:4326",
    )


def tree_file(directory: Path) -> Path:
    """The whole tree written as a GeoPackage in `directory`, for import_file or the CLI."""
    path = directory / "tree.gpkg"
    tree_frame().to_file(path, engine="pyogrio")
    return path
