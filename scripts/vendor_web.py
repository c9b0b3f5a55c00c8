"""Vendor the web pages' third-party files from the npm registry (run by hand; results committed).

- Leaflet (BSD-2-Clause): `dist/` into `src/staystream/web/static/vendor/leaflet/`, with LICENSE.
- world-atlas (ISC; data: Natural Earth, public domain): countries-50m TopoJSON converted here to
  GeoJSON with coordinates rounded to 0.01 degree, so the page needs no TopoJSON decoder.
- axe-core (MPL-2.0), for the accessibility test only: `tests/vendor/axe.min.js`.

Usage: python scripts/vendor_web.py   (needs `npm` and the registry)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "staystream" / "web" / "static" / "vendor"
PACKAGES = {"leaflet": "1.9.4", "world-atlas": "2.0.2", "axe-core": "4.14.1"}
PRECISION = 2  # decimal places of a degree: about 1 km, finer than a country outline at 50m


def npm_unpack(name: str, version: str, into: Path) -> Path:
    subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=into, check=True,
                   capture_output=True)
    target = into / name
    with tarfile.open(into / f"{name}-{version}.tgz") as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def topojson_to_geojson(topology: dict, object_name: str) -> dict:
    """Decode a quantized, delta-encoded TopoJSON object into a GeoJSON FeatureCollection."""
    scale_x, scale_y = topology["transform"]["scale"]
    shift_x, shift_y = topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append([round(x * scale_x + shift_x, PRECISION), round(y * scale_y + shift_y, PRECISION)])
        arcs.append(points)

    def ring(indexes: list[int]) -> list[list[float]]:
        points: list[list[float]] = []
        for index in indexes:
            arc = arcs[index] if index >= 0 else arcs[~index][::-1]
            points.extend(arc[1:] if points else arc)
        deduplicated = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
        return deduplicated

    def rings(polygon: list[list[int]]) -> list[list[list[float]]]:
        return [r for r in map(ring, polygon) if len(r) >= 4]

    features = []
    for geometry in topology["objects"][object_name]["geometries"]:
        if geometry["type"] == "Polygon":
            coordinates: list = rings(geometry["arcs"])
        elif geometry["type"] == "MultiPolygon":
            coordinates = [r for r in map(rings, geometry["arcs"]) if r]
        else:
            continue
        if not coordinates:
            continue
        features.append({
            "type": "Feature", "properties": {"name": geometry.get("properties", {}).get("name")},
            "geometry": {"type": geometry["type"], "coordinates": coordinates},
        })
    return {"type": "FeatureCollection", "features": features}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        leaflet = npm_unpack("leaflet", PACKAGES["leaflet"], work)
        target = STATIC / "leaflet"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in ("leaflet.js", "leaflet.css"):
            shutil.copy(leaflet / "dist" / name, target / name)
        shutil.copytree(leaflet / "dist" / "images", target / "images")
        shutil.copy(leaflet / "LICENSE", target / "LICENSE")

        atlas = npm_unpack("world-atlas", PACKAGES["world-atlas"], work)
        target = STATIC / "world"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        topology = json.loads((atlas / "countries-50m.json").read_text())
        geojson = topojson_to_geojson(topology, "countries")
        (target / "countries-50m.geojson").write_text(json.dumps(geojson, separators=(",", ":")))
        shutil.copy(atlas / "LICENSE", target / "LICENSE")
        (target / "README.md").write_text(
            f"countries-50m.geojson: world-atlas {PACKAGES['world-atlas']} (ISC, see LICENSE), converted\n"
            f"from TopoJSON by scripts/vendor_web.py, coordinates rounded to {PRECISION} decimals.\n"
            "Data: Made with Natural Earth, public domain (naturalearthdata.com).\n")

        axe = npm_unpack("axe-core", PACKAGES["axe-core"], work)
        target = ROOT / "tests" / "vendor"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(axe / "axe.min.js", target / "axe.min.js")
        shutil.copy(axe / "LICENSE", target / "axe-core-LICENSE")


if __name__ == "__main__":
    main()
