"""Synthetic leads for simulations and the demo: deterministic for a seed."""

from __future__ import annotations

import math
from collections.abc import Callable

from seqengine import _rand
from seqengine._model import Lead, LinkedInProfile, XProfile

__all__ = ["synthetic_leads"]

_FIRST = (
    "Ada",
    "Ben",
    "Chloé",
    "Dmitri",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
)
_LAST = (
    "Nakamura",
    "Okafor",
    "Schmidt",
    "García",
    "Dubois",
    "Kowalski",
    "Singh",
    "Rossi",
    "Larsen",
    "Haddad",
    "Moreau",
    "Silva",
)
_COMPANIES = (
    "Acme Analytics",
    "Brightwave",
    "Cobalt Labs",
    "Dataforge",
    "Evergreen AI",
    "Fjord Systems",
    "Granite Cloud",
    "Helix Health",
)
_ROLES = ("Head of Sales", "VP Marketing", "Founder", "CTO", "Growth Lead", "RevOps Manager")
_PAINS = ("pipeline coverage", "reply rates", "manual prospecting", "CRM hygiene")
_DOMAINS = ("gmail.com", "outlook.com", "hotmail.com", "company.example")
_CITIES = ("Berlin", "London", "New York", "Lisbon", "Toronto", "Singapore")


#: What each lead draws, in the order of its draws.
_PURPOSES = (
    "first", "last", "company", "domain", "size", "city", "role", "followers",
    "no-email", "no-x", "no-li", "pain",
)  # fmt: skip


def _lead_draws(seed: int) -> Callable[[str], dict[str, float]]:
    """``lid -> {purpose: _rand.unit(seed, lid, purpose)}`` for every purpose in
    :data:`_PURPOSES`: the hasher absorbs the seed and the lead id once, then each purpose."""
    seeded = _rand._seeded(seed)
    tails = [(what, _rand._encode(what)) for what in _PURPOSES]
    scale = _rand._TWO_POW_MINUS_53
    from_bytes = int.from_bytes

    def draws(lid: str) -> dict[str, float]:
        prefix = seeded.copy()
        prefix.update(_rand._encode(lid))
        out: dict[str, float] = {}
        for what, tail in tails:
            hasher = prefix.copy()
            hasher.update(tail)
            out[what] = (from_bytes(hasher.digest(), "big") >> 11) * scale
        return out

    return draws


def synthetic_leads(n: int, *, seed: int = 0, prefix: str = "lead") -> list[Lead]:
    """``n`` plausible leads with X, LinkedIn and email data (a few deliberately missing)."""
    # Each lead's draws are _rand.unit(seed, lead id, purpose), one per purpose (a simulation
    # of 100,000 leads makes over a million of them): the lead id is hashed once for all.
    lead_draws = _lead_draws(seed)
    floor = math.floor

    def number(lo: int, hi: int, u: float) -> int:
        # _rand.randint's formula.
        return min(lo + floor(u * (hi - lo + 1)), hi)

    def pick(pool: tuple[str, ...], u: float) -> str:
        return pool[number(0, len(pool) - 1, u)]

    leads = []
    width = len(str(max(n, 1)))
    for i in range(n):
        lid = f"{prefix}-{i:0{width}d}"
        u = lead_draws(lid)
        first, last = pick(_FIRST, u["first"]), pick(_LAST, u["last"])
        company = pick(_COMPANIES, u["company"])
        handle = f"{first.lower()}{last.lower()}{i}".encode("ascii", "ignore").decode()
        domain = pick(_DOMAINS, u["domain"])
        if domain == "company.example":
            domain = company.lower().replace(" ", "") + ".example"
        role = pick(_ROLES, u["role"])
        leads.append(
            Lead(
                id=lid,
                name=f"{first} {last}",
                first_name=first,
                company=company,
                company_size=str(number(5, 5000, u["size"])),
                location=pick(_CITIES, u["city"]),
                bio=f"{role} at {company}",
                followers=str(number(50, 50_000, u["followers"])),
                email=None if u["no-email"] < 0.05 else f"{handle}@{domain}",
                x=None
                if u["no-x"] < 0.05
                else XProfile(user_id=str(10_000_000 + i), username=handle),
                linkedin=None
                if u["no-li"] < 0.03
                else LinkedInProfile(public_id=handle, urn=f"urn:li:fsd_profile:ACo{i:08d}"),
                enrichment={"role": role, "pain_point": pick(_PAINS, u["pain"])},
            )
        )
    return leads
