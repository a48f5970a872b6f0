"""Dashboard charts as plain geometry for inline SVG: deploys per day (stacked success,
failure, rollback) and the median duration per day. Pure functions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

WIDTH, HEIGHT, PAD = 640, 160, 24


def daily(series: list[dict[str, Any]], days: int, today: date) -> list[dict[str, Any]]:
    """One row per day (oldest first) summing every project/env of that day."""
    first = today - timedelta(days=days - 1)
    rows: dict[str, dict[str, Any]] = {
        (first + timedelta(days=i)).isoformat(): {
            "day": (first + timedelta(days=i)).isoformat(),
            "success": 0,
            "failed": 0,
            "rollback": 0,
            "durations": [],
        }
        for i in range(days)
    }
    for item in series:
        row = rows.get(item["period"])
        if row is None:
            continue
        row["rollback"] += item["rollbacks"]
        row["success"] += max(item["successes"] - item["rollbacks"], 0)
        row["failed"] += item["failures"]
        if item["median_seconds"] is not None:
            row["durations"].append(item["median_seconds"])
    out = []
    for row in rows.values():
        durations = row.pop("durations")
        row["duration"] = round(sum(durations) / len(durations), 1) if durations else None
        out.append(row)
    return out


def bars(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked bars: rects per day and kind, scaled to the busiest day."""
    top = max([d["success"] + d["failed"] + d["rollback"] for d in days] + [1])
    slot = (WIDTH - 2 * PAD) / max(len(days), 1)
    rects = []
    for index, day in enumerate(days):
        bottom = HEIGHT - PAD
        for kind in ("success", "failed", "rollback"):
            height = (HEIGHT - 2 * PAD) * day[kind] / top
            if day[kind]:
                rects.append(
                    {
                        "kind": kind,
                        "x": round(PAD + index * slot + slot * 0.15, 1),
                        "y": round(bottom - height, 1),
                        "w": round(slot * 0.7, 1),
                        "h": round(height, 1),
                        "day": day["day"],
                        "count": day[kind],
                    }
                )
            bottom -= height
    return {"rects": rects, "top": top, "width": WIDTH, "height": HEIGHT, "pad": PAD}


def trend(days: list[dict[str, Any]]) -> dict[str, Any]:
    """A polyline of the median duration per day (days without deploys are skipped)."""
    known = [(i, d["duration"]) for i, d in enumerate(days) if d["duration"] is not None]
    top = max([v for _, v in known] + [1.0])
    slot = (WIDTH - 2 * PAD) / max(len(days), 1)
    points = [
        (round(PAD + i * slot + slot / 2, 1), round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / top, 1))
        for i, v in known
    ]
    return {
        "points": " ".join(f"{x},{y}" for x, y in points),
        "dots": [
            {"x": x, "y": y, "value": v} for (x, y), (_, v) in zip(points, known, strict=True)
        ],
        "top": top,
        "width": WIDTH,
        "height": HEIGHT,
        "pad": PAD,
    }
