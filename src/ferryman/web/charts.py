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


SMALL_W, SMALL_H, SMALL_PAD = 320, 90, 8


def analysis(
    metrics: list[dict[str, Any]], measurements: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One small chart per metric of a canary analysis: the canary's and the baseline's
    value per interval as two lines (a gap where an interval had none), each interval a dot
    coloured by its verdict, and how many intervals failed."""
    out = []
    for metric in metrics:
        rows = [m for m in measurements if m["metric"] == metric["name"]]
        values = [
            v for m in rows for v in (m["canary"], m["baseline"]) if isinstance(v, int | float)
        ]
        top = max(values, default=0.0)
        low = min(values, default=0.0)
        span = (top - low) or 1.0
        last = max((m["interval"] for m in rows), default=1) or 1

        def x(interval: int, last: int = last) -> float:
            return round(
                SMALL_PAD + (SMALL_W - 2 * SMALL_PAD) * (interval - 1) / max(last - 1, 1), 1
            )

        def y(value: float, low: float = low, span: float = span) -> float:
            return round(SMALL_H - SMALL_PAD - (SMALL_H - 2 * SMALL_PAD) * (value - low) / span, 1)

        def line(key: str, rows: list[dict[str, Any]] = rows) -> list[str]:
            """Polyline point lists, split where a value is missing."""
            parts: list[list[str]] = [[]]
            for m in rows:
                value = m[key]
                if isinstance(value, int | float):
                    parts[-1].append(f"{x(m['interval'])},{y(value)}")
                elif parts[-1]:
                    parts.append([])
            return [" ".join(p) for p in parts if p]

        out.append(
            {
                "name": metric["name"],
                "compare": metric.get("compare", ""),
                "canary": line("canary"),
                "baseline": line("baseline"),
                "dots": [
                    {
                        "x": x(m["interval"]),
                        "verdict": m["verdict"],
                        "title": f"#{m['interval']} {m['verdict']}: {m.get('detail') or ''}",
                    }
                    for m in rows
                ],
                "intervals": len(rows),
                "failed": sum(1 for m in rows if m["verdict"] == "fail"),
                "top": top,
                "low": low,
                "width": SMALL_W,
                "height": SMALL_H,
            }
        )
    return out
