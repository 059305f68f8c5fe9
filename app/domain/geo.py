"""Great-circle distance between two points given in decimal degrees (WGS 84).

Straight-line distance is the service's stand-in for travel time: it needs no map data, which
matters on a hospital intranet without internet access.
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: Mean Earth radius (IUGG), in kilometres.
EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Return the great-circle distance in kilometres between (lat1, lon1) and (lat2, lon2)."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    # min() guards against a rounding error pushing a just above 1 for antipodal points.
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def distance_from_km(lat: float, lon: float) -> Callable[[float, float], float]:
    """Return ``f(lat2, lon2)`` giving :func:`haversine_km` from the fixed point (lat, lon).

    The terms of the fixed point are computed once; for ranking many candidates from one source.
    """
    phi1 = math.radians(lat)
    cos_phi1 = math.cos(phi1)
    lambda1 = math.radians(lon)
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt
    diameter = 2 * EARTH_RADIUS_KM

    def distance(lat2: float, lon2: float) -> float:
        phi2 = radians(lat2)
        a = (
            sin((phi2 - phi1) / 2) ** 2
            + cos_phi1 * cos(phi2) * sin((radians(lon2) - lambda1) / 2) ** 2
        )
        return diameter * asin(min(1.0, sqrt(a)))

    return distance
