"""Great-circle distances."""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

__all__ = ["EARTH_RADIUS_KM", "haversine_km"]

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG, (2a + b) / 3 of WGS 84), in kilometres."""


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees (haversine formula,
    spherical Earth of radius `EARTH_RADIUS_KM`; error against the ellipsoid under 0.5 %)."""
    p1 = radians(lat1)
    p2 = radians(lat2)
    h = sin((p2 - p1) * 0.5) ** 2 + cos(p1) * cos(p2) * sin(radians(lon2 - lon1) * 0.5) ** 2
    return 2.0 * EARTH_RADIUS_KM * asin(sqrt(min(1.0, h)))
