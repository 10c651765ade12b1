"""A deterministic demo catalog and graded copies for `make run` and tests (same seed, same data).

The tables are real sets with their famous cards (Base Set Charizard 4/102, 1952 Topps Mantle
#311, 1986 Fleer Jordan #57, Alpha Black Lotus, LOB Blue-Eyes White Dragon, ...); where a
number is not known by heart it is plausible, not authoritative. Each row of a set table is
"number|name|rarity|subject": rarity and subject optional, subject "-" for none; by default
the subject (player or character) is the name, minus "Dark " and " ex"/" V"/" VMAX" for
Pokémon. Variants multiply a set's rows (1st Edition / Unlimited, Refractor, Silver Prizm).
When more cards are asked for than the tables hold, invented players on real sports sets fill
the rest. Pure: no I/O, no clock; randomness only from `random.Random(seed)`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from market.catalog import RAW, Card, Grading

DEFAULT_CARDS = 320
DEFAULT_COPIES = 600
VINTAGE_BEFORE = 1980  # older cards survive in worse shape: lower grades, more SGC


class _Set(NamedTuple):
    category: str
    name: str
    year: int
    subject: str | None  # "player", "character" or None (the field a row's subject fills)
    variants: tuple[str | None, ...]
    number_format: str
    rows: str


_POKEMON_1ST = ("1st Edition", "Unlimited")
_SETS: tuple[_Set, ...] = (
    _Set("pokemon", "Base Set", 1999, "character", ("1st Edition", "Shadowless", "Unlimited"),
         "{}/102", """
4|Charizard|Holo Rare
2|Blastoise|Holo Rare
15|Venusaur|Holo Rare
1|Alakazam|Holo Rare
3|Chansey|Holo Rare
5|Clefairy|Holo Rare
6|Gyarados|Holo Rare
7|Hitmonchan|Holo Rare
8|Machamp|Holo Rare
9|Magneton|Holo Rare
10|Mewtwo|Holo Rare
11|Nidoking|Holo Rare
12|Ninetales|Holo Rare
13|Poliwrath|Holo Rare
14|Raichu|Holo Rare
16|Zapdos|Holo Rare
18|Dragonair|Rare
20|Electabuzz|Rare
44|Bulbasaur|Common
46|Charmander|Common
58|Pikachu|Common
63|Squirtle|Common"""),
    _Set("pokemon", "Jungle", 1999, "character", _POKEMON_1ST, "{}/64", """
11|Snorlax|Holo Rare
10|Scyther|Holo Rare
1|Clefable|Holo Rare
2|Electrode|Holo Rare
3|Flareon|Holo Rare
4|Jolteon|Holo Rare
5|Kangaskhan|Holo Rare
6|Mr. Mime|Holo Rare
7|Nidoqueen|Holo Rare
8|Pidgeot|Holo Rare
9|Pinsir|Holo Rare
12|Vaporeon|Holo Rare
13|Venomoth|Holo Rare
14|Victreebel|Holo Rare
15|Vileplume|Holo Rare
16|Wigglytuff|Holo Rare"""),
    _Set("pokemon", "Fossil", 1999, "character", _POKEMON_1ST, "{}/62", """
4|Dragonite|Holo Rare
5|Gengar|Holo Rare
1|Aerodactyl|Holo Rare
2|Articuno|Holo Rare
3|Ditto|Holo Rare
6|Haunter|Holo Rare
7|Hitmonlee|Holo Rare
8|Hypno|Holo Rare
9|Kabutops|Holo Rare
10|Lapras|Holo Rare
11|Magneton|Holo Rare
12|Moltres|Holo Rare
13|Muk|Holo Rare
14|Raichu|Holo Rare
15|Zapdos|Holo Rare"""),
    _Set("pokemon", "Team Rocket", 2000, "character", _POKEMON_1ST, "{}/82", """
4|Dark Charizard|Holo Rare
3|Dark Blastoise|Holo Rare
1|Dark Alakazam|Holo Rare
2|Dark Arbok|Holo Rare
5|Dark Dragonite|Holo Rare
6|Dark Dugtrio|Holo Rare
7|Dark Golbat|Holo Rare
8|Dark Gyarados|Holo Rare
9|Dark Hypno|Holo Rare
10|Dark Machamp|Holo Rare
11|Dark Magneton|Holo Rare
12|Dark Slowbro|Holo Rare
13|Dark Vileplume|Holo Rare
14|Dark Weezing|Holo Rare
15|Here Comes Team Rocket!|Holo Rare|-
16|Rocket's Sneak Attack|Holo Rare|-"""),
    _Set("pokemon", "Neo Genesis", 2000, "character", _POKEMON_1ST, "{}/111", """
9|Lugia|Holo Rare
17|Typhlosion|Holo Rare
4|Feraligatr|Holo Rare
10|Meganium|Holo Rare
1|Ampharos|Holo Rare
2|Azumarill|Holo Rare
3|Bellossom|Holo Rare
6|Heracross|Holo Rare
7|Jumpluff|Holo Rare
8|Kingdra|Holo Rare
12|Pichu|Holo Rare
13|Skarmory|Holo Rare
14|Slowking|Holo Rare
15|Steelix|Holo Rare
16|Togetic|Holo Rare"""),
    _Set("pokemon", "Evolving Skies", 2021, "character", (None,), "{}/203", """
215|Umbreon VMAX|Alternate Art Secret
218|Rayquaza VMAX|Alternate Art Secret
212|Sylveon VMAX|Alternate Art Secret
189|Umbreon V|Alternate Art
194|Rayquaza V|Alternate Art
184|Sylveon V|Alternate Art
180|Espeon V|Alternate Art
175|Glaceon V|Alternate Art
167|Leafeon V|Alternate Art
192|Dragonite V|Alternate Art
205|Leafeon VMAX|Alternate Art Secret
209|Glaceon VMAX|Alternate Art Secret"""),
    _Set("pokemon", "Scarlet & Violet 151", 2023, "character", (None,), "{}/165", """
199|Charizard ex|Special Illustration Rare
205|Mew ex|Hyper Rare
200|Blastoise ex|Special Illustration Rare
198|Venusaur ex|Special Illustration Rare
201|Alakazam ex|Special Illustration Rare
202|Zapdos ex|Special Illustration Rare
203|Erika's Invitation|Special Illustration Rare|-
204|Giovanni's Charisma|Special Illustration Rare|-
166|Bulbasaur|Illustration Rare
168|Charmander|Illustration Rare
170|Squirtle|Illustration Rare
173|Pikachu|Illustration Rare"""),
    _Set("baseball", "1933 Goudey", 1933, "player", (None,), "{}", """
53|Babe Ruth
92|Lou Gehrig
144|Babe Ruth
149|Babe Ruth
181|Babe Ruth
160|Lou Gehrig
29|Jimmie Foxx
106|Napoleon Lajoie
127|Mel Ott
220|Lefty Grove
223|Dizzy Dean
230|Carl Hubbell"""),
    _Set("baseball", "1952 Topps", 1952, "player", (None,), "{}", """
311|Mickey Mantle
261|Willie Mays
312|Jackie Robinson
314|Roy Campanella
407|Eddie Mathews
191|Yogi Berra
37|Duke Snider
33|Warren Spahn
333|Pee Wee Reese
313|Bobby Thomson
36|Gil Hodges
11|Phil Rizzuto
1|Andy Pafko"""),
    _Set("baseball", "1989 Upper Deck", 1989, "player", (None,), "{}", """
1|Ken Griffey Jr.|Star Rookie
25|Randy Johnson|Star Rookie
13|Gary Sheffield|Star Rookie
17|John Smoltz|Star Rookie
145|Nolan Ryan
467|Cal Ripken Jr.
357|Dale Murphy
273|Craig Biggio"""),
    _Set("baseball", "2011 Topps Update", 2011, "player", (None, "Gold", "Diamond Anniversary"),
         "{}", """
US175|Mike Trout
US55|Eric Hosmer
US132|Jose Altuve
US290|Paul Goldschmidt
US158|Dee Gordon
US180|Craig Kimbrel"""),
    _Set("baseball", "2018 Topps Chrome", 2018, "player", (None, "Refractor", "Gold Refractor"),
         "{}", """
150|Shohei Ohtani
193|Ronald Acuña Jr.
199|Gleyber Torres
35|Rafael Devers
61|Walker Buehler
1|Aaron Judge"""),
    _Set("basketball", "1986 Fleer", 1986, "player", (None,), "{}", """
57|Michael Jordan
9|Larry Bird
53|Magic Johnson
7|Charles Barkley
68|Karl Malone
32|Patrick Ewing
82|Hakeem Olajuwon
26|Clyde Drexler
121|Dominique Wilkins
109|Isiah Thomas
1|Kareem Abdul-Jabbar
131|James Worthy"""),
    _Set("basketball", "1996 Topps Chrome", 1996, "player", (None, "Refractor"), "{}", """
138|Kobe Bryant
171|Allen Iverson
182|Steve Nash
217|Ray Allen
208|Stephon Marbury
139|Michael Jordan"""),
    _Set("basketball", "2003 Topps Chrome", 2003, "player", (None, "Refractor", "Gold Refractor"),
         "{}", """
111|LeBron James
113|Carmelo Anthony
115|Dwyane Wade
117|Chris Bosh"""),
    _Set("basketball", "2018 Panini Prizm", 2018, "player", (None, "Silver Prizm"), "{}", """
280|Luka Dončić
78|Trae Young
4|Shai Gilgeous-Alexander
174|Jaren Jackson Jr.
179|Deandre Ayton"""),
    _Set("football", "1958 Topps", 1958, "player", (None,), "{}", """
62|Jim Brown
22|Johnny Unitas
66|Bart Starr
73|Frank Gifford"""),
    _Set("football", "1984 Topps", 1984, "player", (None,), "{}", """
123|Dan Marino
63|John Elway
280|Eric Dickerson
380|Darrell Green"""),
    _Set("football", "2000 Playoff Contenders", 2000, "player", (None,), "{}", """
144|Tom Brady|Rookie Ticket Autograph
152|Brian Urlacher|Rookie Ticket Autograph
103|Shaun Alexander|Rookie Ticket Autograph"""),
    _Set("football", "2017 Panini Prizm", 2017, "player", (None, "Silver Prizm"), "{}", """
269|Patrick Mahomes II
233|Deshaun Watson
203|Christian McCaffrey
210|Alvin Kamara"""),
    _Set("hockey", "1979 O-Pee-Chee", 1979, "player", (None,), "{}", """
18|Wayne Gretzky
1|Guy Lafleur
100|Mike Bossy"""),
    _Set("hockey", "2005 Upper Deck", 2005, "player", (None,), "{}", """
201|Sidney Crosby|Young Guns
443|Alexander Ovechkin|Young Guns
205|Henrik Lundqvist|Young Guns
219|Ryan Getzlaf|Young Guns"""),
    _Set("hockey", "2015 Upper Deck", 2015, "player", (None,), "{}", """
201|Connor McDavid|Young Guns
451|Jack Eichel|Young Guns
218|Artemi Panarin|Young Guns"""),
    _Set("soccer", "2018 Panini Prizm World Cup", 2018, "player", (None, "Silver Prizm"), "{}",
         """
80|Kylian Mbappé
12|Lionel Messi
150|Cristiano Ronaldo
58|Luka Modrić
76|Mohamed Salah
24|Neymar Jr"""),
    _Set("soccer", "2019 Topps Chrome UEFA Champions League", 2019, "player",
         (None, "Refractor"), "{}", """
68|Erling Haaland
72|Vinícius Júnior
39|Jadon Sancho
1|Kylian Mbappé"""),
    _Set("magic", "Limited Edition Alpha", 1993, None, (None,), "{}", """
232|Black Lotus|Rare
48|Ancestral Recall|Rare
83|Time Walk|Rare
84|Timetwister|Rare
265|Mox Sapphire|Rare
262|Mox Jet|Rare
264|Mox Ruby|Rare
263|Mox Pearl|Rare
261|Mox Emerald|Rare
174|Shivan Dragon|Rare
65|Lord of Atlantis|Rare
39|Serra Angel|Uncommon
54|Counterspell|Uncommon
161|Lightning Bolt|Common
98|Dark Ritual|Common"""),
    _Set("magic", "Limited Edition Beta", 1993, None, (None,), "{}", """
233|Black Lotus|Rare
48|Ancestral Recall|Rare
83|Time Walk|Rare
266|Mox Sapphire|Rare
263|Mox Jet|Rare
175|Shivan Dragon|Rare
40|Serra Angel|Uncommon
162|Lightning Bolt|Common"""),
    _Set("magic", "Arabian Nights", 1993, None, (None,), "{}", """
31|Juzám Djinn|Uncommon
84|Library of Alexandria|Uncommon
73|Bazaar of Baghdad|Uncommon
35|Serendib Efreet|Rare
81|City of Brass|Uncommon
66|Ifh-Bíff Efreet|Rare
21|Shahrazad|Uncommon
14|King Suleiman|Rare"""),
    _Set("yugioh", "Legend of Blue Eyes White Dragon", 2002, None, _POKEMON_1ST, "{}", """
LOB-001|Blue-Eyes White Dragon|Ultra Rare
LOB-005|Dark Magician|Ultra Rare
LOB-070|Red-Eyes B. Dragon|Ultra Rare
LOB-124|Exodia the Forbidden One|Ultra Rare
LOB-120|Right Leg of the Forbidden One|Ultra Rare
LOB-121|Left Leg of the Forbidden One|Ultra Rare
LOB-122|Right Arm of the Forbidden One|Ultra Rare
LOB-123|Left Arm of the Forbidden One|Ultra Rare
LOB-006|Gaia The Fierce Knight|Ultra Rare
LOB-053|Raigeki|Super Rare"""),
    _Set("yugioh", "Metal Raiders", 2002, None, _POKEMON_1ST, "{}", """
MRD-000|Gate Guardian|Secret Rare
MRD-003|Summoned Skull|Ultra Rare
MRD-036|Harpie's Feather Duster|Secret Rare
MRD-138|Mirror Force|Ultra Rare
MRD-060|Change of Heart|Ultra Rare
MRD-143|Thousand-Eyes Restrict|Ultra Rare"""),
    _Set("yugioh", "Pharaoh's Servant", 2002, None, _POKEMON_1ST, "{}", """
PSV-000|Jinzo|Secret Rare
PSV-104|Imperial Order|Secret Rare
PSV-012|Call of the Haunted|Super Rare
PSV-034|Jar of Greed|Common"""),
)

# Invented players for volume beyond the tables (first × last names, on real sports sets).
_FIRST = ("Dale", "Marcus", "Tyler", "Andre", "Luis", "Owen", "Jalen", "Cody", "Rafael",
          "Derek", "Mateo", "Isaiah", "Nolan", "Trevor", "Kenji", "Bruno", "Felix", "Darius")
_LAST = ("Whitford", "Castellano", "Brandt", "Okafor", "Lindqvist", "Moreau", "Haskins",
         "Delgado", "Pruitt", "Varga", "Sorensen", "McAllister", "Quintero", "Ashby", "Nakamura",
         "Oduya", "Petrović", "Guerrero")

# Sports sets with plain numbers up to a few hundred, where invented players blend in.
_FILLER_SETS = ("1952 Topps", "1989 Upper Deck", "2018 Topps Chrome", "1986 Fleer",
                "2018 Panini Prizm", "1984 Topps", "2017 Panini Prizm", "1979 O-Pee-Chee",
                "2015 Upper Deck", "2018 Panini Prizm World Cup")

_POKEMON_SUBJECT = re.compile(r"^Dark |\s+(?:ex|V|VMAX)$")


class _Entry(NamedTuple):
    set: _Set
    number: str
    name: str
    rarity: str | None
    subject: str | None
    variant: str | None
    chase: bool  # the set's headline card (first row, first variant): always in the demo


def _entries() -> list[_Entry]:
    out: list[_Entry] = []
    for card_set in _SETS:
        for row_index, line in enumerate(card_set.rows.strip().splitlines()):
            number, name, *rest = line.split("|")
            rarity = rest[0] if rest and rest[0] else None
            if len(rest) > 1:
                subject = None if rest[1] == "-" else rest[1]
            elif card_set.subject is None:
                subject = None
            else:
                subject = _POKEMON_SUBJECT.sub("", name) if card_set.category == "pokemon" else name
            for variant_index, variant in enumerate(card_set.variants):
                out.append(_Entry(card_set, card_set.number_format.format(number), name, rarity,
                                  subject, variant, row_index == 0 and variant_index == 0))
    return out


def _fillers(rng: random.Random, count: int, taken: set[tuple[str, str]]) -> list[_Entry]:
    sports = [s for s in _SETS if s.name in _FILLER_SETS]
    out: list[_Entry] = []
    while len(out) < count:
        card_set = rng.choice(sports)
        number = str(rng.randint(2, 660))
        if (card_set.name, number) in taken:
            continue
        taken.add((card_set.name, number))
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        out.append(_Entry(card_set, number, name, None, name, None, False))
    return out


def _card_id(seed: int, entry: _Entry, used: set[str]) -> str:
    text = f"{seed}|{entry.set.name}|{entry.number}|{entry.variant}|{entry.name}"
    digest = hashlib.sha256(text.encode()).hexdigest()
    size = 12
    while f"card_{digest[:size]}" in used:  # never in practice; keeps ids unique regardless
        size += 1
    used.add(f"card_{digest[:size]}")
    return f"card_{digest[:size]}"


def demo_catalog(seed: int, n: int = DEFAULT_CARDS) -> list[Card]:
    """`n` distinct cards, deterministic in `seed`: every set's headline card, then a seeded
    sample of the tables' other rows and variants, then invented players when the tables run
    out. Ordered like the tables (category, set, row, variant)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    pool = _entries()
    chase = [i for i, e in enumerate(pool) if e.chase]
    rest = [i for i, e in enumerate(pool) if not e.chase]
    rng.shuffle(rest)
    chosen = sorted((chase + rest)[:n])
    entries = [pool[i] for i in chosen]
    if n > len(pool):
        taken = {(e.set.name, e.number) for e in pool}
        entries += _fillers(rng, n - len(pool), taken)
    used: set[str] = set()
    cards: list[Card] = []
    for e in entries:
        field = e.set.subject
        cards.append(Card(
            card_id=_card_id(seed, e, used), name=e.name, set=e.set.name, number=e.number,
            year=e.set.year, category=e.set.category,
            player=e.subject if field == "player" else None,
            character=e.subject if field == "character" else None,
            variant=e.variant, rarity=e.rarity,
        ))
    return cards


# Grader shares and grade weights, modern and vintage. PSA gives no 9.5; BGS 9.5 is its
# "Gem Mint" and its 10 ("Pristine") is rare; a vintage PSA 10 almost never happens.
_GRADER_WEIGHTS: dict[bool, dict[str, float]] = {
    False: {"PSA": 48, "BGS": 14, "CGC": 13, "SGC": 9, RAW: 16},
    True: {"PSA": 50, "BGS": 6, "CGC": 4, "SGC": 24, RAW: 16},
}
_MODERN_GRADES: dict[str, dict[float, float]] = {
    "PSA": {10: 8, 9: 30, 8.5: 3, 8: 24, 7: 12, 6: 7, 5: 5, 4: 4, 3: 3, 2: 2, 1.5: 1, 1: 1},
    "BGS": {10: 1.5, 9.5: 28, 9: 32, 8.5: 16, 8: 10, 7.5: 5, 7: 4, 6: 2, 5: 1.5},
    "CGC": {10: 9, 9.5: 20, 9: 30, 8.5: 14, 8: 12, 7: 7, 6: 4, 5: 4},
    "SGC": {10: 7, 9.5: 12, 9: 28, 8.5: 12, 8: 18, 7: 10, 6: 6, 5: 4, 4: 3},
}
_VINTAGE_GRADES: dict[float, float] = {
    10: 0.2, 9: 2, 8.5: 3, 8: 10, 7.5: 4, 7: 15, 6.5: 4, 6: 16, 5.5: 3, 5: 14, 4.5: 2, 4: 11,
    3.5: 2, 3: 8, 2.5: 1, 2: 6, 1.5: 1, 1: 4,
}


def _cert(rng: random.Random, grader: str) -> str:
    """A certificate number shaped like the grader's: PSA 8-9 digits, BGS 10 with leading
    zeros, CGC 10 starting 40, SGC 7-8 digits."""
    if grader == "PSA":
        return str(rng.randrange(10_000_000, 999_999_999))
    if grader == "BGS":
        return f"{rng.randrange(1_000_000, 99_999_999):010d}"
    if grader == "CGC":
        return f"40{rng.randrange(10_000_000, 99_999_999)}"
    return str(rng.randrange(1_000_000, 99_999_999))


def demo_copies(
    cards: Sequence[Card], seed: int, n: int = DEFAULT_COPIES
) -> list[tuple[str, Grading]]:
    """`n` graded copies of `cards`, deterministic in `seed`: (card_id, Grading). Graders and
    grades follow `_GRADER_WEIGHTS` and the grade tables (vintage cards grade lower); certs
    are unique per grader; RAW copies have neither grade nor cert."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not cards and n:
        raise ValueError("no cards to copy")
    rng = random.Random(f"copies|{seed}")
    certs: dict[str, set[str]] = {}
    copies: list[tuple[str, Grading]] = []
    for _ in range(n):
        card = rng.choice(cards)
        vintage = card.year < VINTAGE_BEFORE
        grader = _pick(rng, _GRADER_WEIGHTS[vintage])
        if grader == RAW:
            copies.append((card.card_id, Grading(RAW, None, None)))
            continue
        table = _VINTAGE_GRADES if vintage else _MODERN_GRADES[grader]
        grade = _pick(rng, table)
        used = certs.setdefault(grader, set())
        cert = _cert(rng, grader)
        while cert in used:
            cert = _cert(rng, grader)
        used.add(cert)
        copies.append((card.card_id, Grading(grader, grade, cert)))
    return copies


def _pick[T](rng: random.Random, weights: Mapping[T, float]) -> T:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]
