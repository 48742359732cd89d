"""Synthetic leads for simulations and the demo: deterministic for a seed."""

from __future__ import annotations

import math

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


def synthetic_leads(n: int, *, seed: int = 0, prefix: str = "lead") -> list[Lead]:
    """``n`` plausible leads with X, LinkedIn and email data (a few deliberately missing)."""
    # One drawer per purpose: the same draws as _rand.unit(seed, lead id, purpose), each
    # hashing only the lead id (a simulation of 100,000 leads makes over a million of them).
    draws = {
        what: _rand.drawer(seed, what)
        for what in (
            "first", "last", "company", "domain", "size", "city", "role", "followers",
            "no-email", "no-x", "no-li", "pain",
        )
    }  # fmt: skip

    def number(lo: int, hi: int, lid: str, what: str) -> int:
        # _rand.randint's formula, on the purpose's drawer.
        return min(lo + math.floor(draws[what](lid) * (hi - lo + 1)), hi)

    leads = []
    width = len(str(max(n, 1)))
    for i in range(n):
        lid = f"{prefix}-{i:0{width}d}"

        def pick(pool: tuple[str, ...], what: str, lid: str = lid) -> str:
            return pool[number(0, len(pool) - 1, lid, what)]

        first, last = pick(_FIRST, "first"), pick(_LAST, "last")
        company = pick(_COMPANIES, "company")
        handle = f"{first.lower()}{last.lower()}{i}".encode("ascii", "ignore").decode()
        domain = pick(_DOMAINS, "domain")
        if domain == "company.example":
            domain = company.lower().replace(" ", "") + ".example"
        leads.append(
            Lead(
                id=lid,
                name=f"{first} {last}",
                first_name=first,
                company=company,
                company_size=str(number(5, 5000, lid, "size")),
                location=pick(_CITIES, "city"),
                bio=f"{pick(_ROLES, 'role')} at {company}",
                followers=str(number(50, 50_000, lid, "followers")),
                email=None if draws["no-email"](lid) < 0.05 else f"{handle}@{domain}",
                x=None
                if draws["no-x"](lid) < 0.05
                else XProfile(user_id=str(10_000_000 + i), username=handle),
                linkedin=None
                if draws["no-li"](lid) < 0.03
                else LinkedInProfile(public_id=handle, urn=f"urn:li:fsd_profile:ACo{i:08d}"),
                enrichment={"role": pick(_ROLES, "role"), "pain_point": pick(_PAINS, "pain")},
            )
        )
    return leads
