"""The standard set of report categories, with skills, priorities and SLA targets (minutes)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dispatch.incidents.models import Category

# code, 中文, English, skill, priority, needs crew, ack, arrive, resolve, verify, clock, icon
STANDARD = [
    ("burst_pipe", "水管爆裂", "Burst water pipe", "plumbing", "urgent", True, 5, 20, 240, 1440, "wall", "💧"),
    ("no_water", "停水", "No water", "plumbing", "high", True, 15, 60, 480, 1440, "wall", "🚱"),
    ("power_cut", "停电", "Power cut", "electrical", "urgent", True, 5, 30, 240, 1440, "wall", "⚡"),
    ("gas_smell", "燃气泄漏气味", "Gas smell", "gas", "urgent", True, 3, 15, 120, 1440, "wall", "🔥"),
    ("blocked_drain", "下水道堵塞", "Blocked drain", "drainage", "high", True, 30, 120, 480, 1440, "service_hours", "🕳"),
    ("rubbish", "垃圾堆放", "Rubbish", "sanitation", "normal", True, 60, 240, 1440, 1440, "service_hours", "🗑"),
    ("street_light", "路灯损坏", "Broken street light", "electrical", "normal", True, 60, 480, 2880, 1440, "service_hours", "💡"),
    ("lift_fault", "电梯故障", "Lift fault", "lift", "high", True, 10, 30, 240, 1440, "wall", "🛗"),
    ("noise", "噪音扰民", "Noise", None, "normal", False, 30, 120, 480, 1440, "service_hours", "🔊"),
    ("neighbour_dispute", "邻里纠纷", "Neighbour dispute", None, "normal", False, 60, 240, 2880, 1440, "service_hours", "🤝"),
    ("safety_hazard", "安全隐患", "Safety hazard", "general", "high", True, 15, 60, 480, 1440, "wall", "⚠"),
    ("other", "其他", "Other", "general", "low", True, 120, 480, 2880, 1440, "service_hours", "❓"),
]


def seed_categories(session: Session) -> int:
    """Add the standard categories that are missing; returns how many were added."""
    added = 0
    for (code, zh, en, skill, priority, needs_crew, ack, arrive, resolve, verify, clock,
         icon) in STANDARD:
        if session.get(Category, code) is None:
            session.add(Category(code=code, name_zh=zh, name_en=en, skill=skill, priority=priority,
                                 needs_crew=needs_crew, acknowledge_minutes=ack,
                                 arrive_minutes=arrive, resolve_minutes=resolve,
                                 verify_minutes=verify, clock_kind=clock, icon=icon, active=True))
            added += 1
    return added
