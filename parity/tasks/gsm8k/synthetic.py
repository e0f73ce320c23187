"""Deterministic generator of GSM8K-format math word problems, the offline default data source.
Row i depends only on (seed, i); every answer carries exact <<expr=value>> calculator annotations."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

Num = int | Decimal
_CENT = Decimal("0.01")
_TEST_SALT = "test"


class _Person:
    """A name with the pronoun forms the templates need."""

    __slots__ = ("name", "he", "his", "him", "himself", "He", "His")

    def __init__(self, name: str, female: bool) -> None:
        self.name = name
        self.he, self.his, self.him, self.himself = (
            ("she", "her", "her", "herself") if female else ("he", "his", "him", "himself")
        )
        self.He = self.he.capitalize()
        self.His = self.his.capitalize()


_FEMALE = (
    "Ava Chloe Emma Fatima Grace Hana Isabel Jasmine Keiko Lena Maria Nadia Olivia Priya Rosa Sofia Tara Zoe"
)
_MALE = (
    "Aaron Ben Carlos Daniel Ethan Felix Hassan Ivan Jamal Kenji Liam Mateo Noah Omar Pedro Ravi Samuel Tom"
)
_PEOPLE = [_Person(n, True) for n in _FEMALE.split()] + [_Person(n, False) for n in _MALE.split()]

_SHOP_ITEMS = (
    "notebooks",
    "pencils",
    "apples",
    "muffins",
    "candles",
    "comic books",
    "bottles of juice",
    "loaves of bread",
    "bars of soap",
    "packs of gum",
)
_SALE_ITEMS = ("jacket", "backpack", "lamp", "board game", "blender", "watch", "suitcase", "pair of boots")
_SHARE_ITEMS = ("stickers", "marbles", "baseball cards", "seashells", "cookies", "beads", "stamps")
_BIG_ITEMS = ("bike", "laptop", "guitar", "phone", "camera", "tablet", "couch")
_RELATIVES = ("mother", "father", "aunt", "uncle")
_CITIES = ("Denver", "Fargo", "Anchorage", "Duluth", "Helena", "Bismarck", "Minneapolis", "Burlington")
_BAKES = ("muffins", "cookies", "pancakes", "brownies", "biscuits", "cupcakes")
_BILLS = ("electric", "phone", "water", "internet", "gas", "insurance")
_PLOTS = ("garden", "yard", "pasture", "playground", "dog run")
_PRODUCTS = (
    ("toy car", "toy cars"),
    ("water bottle", "water bottles"),
    ("light bulb", "light bulbs"),
    ("paper cup", "paper cups"),
    ("candle", "candles"),
    ("mug", "mugs"),
)
_SCHOOLS = ("Lincoln Middle School", "Oak Ridge High School", "Maple Elementary", "Riverside Academy")
_VESSELS = ("submarine", "research sub", "diving bell")


def _n(v: Num) -> str:
    """Calculator form: no separators, no trailing zeros."""
    if isinstance(v, int):
        return str(v)
    if v == v.to_integral_value():
        return str(int(v))
    return format(v.normalize(), "f")


def _p(v: Num) -> str:
    """Prose form of a plain number: thousands separators."""
    if isinstance(v, int):
        return f"{v:,}"
    if v == v.to_integral_value():
        return f"{int(v):,}"
    return format(v.normalize(), ",f")


def _m(v: Num) -> str:
    """Prose form of an amount of money, without the dollar sign."""
    if isinstance(v, int):
        return f"{v:,}"
    if v == v.to_integral_value():
        return f"{int(v):,}"
    return f"{v:,.2f}"


def _d(v: Num) -> str:
    """Prose form of an amount of money."""
    return "$" + _m(v)


def _a(word: str) -> str:
    """Prefix the indefinite article."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _cents(rng: random.Random, lo: int, hi: int, step: int) -> Decimal:
    """A random price between lo and hi cents, as dollars."""
    return Decimal(rng.randrange(lo, hi, step)) * _CENT


class _Work:
    """Collects reasoning lines; the final answer is always the last annotated value."""

    __slots__ = ("lines", "last")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.last = ""

    def calc(self, expr: str, value: Num, money: bool = False) -> str:
        """Annotate `expr` and write its value out, GSM8K style."""
        text = _n(value)
        self.last = text
        if money:
            return f"$<<{expr}={text}>>{_m(value)}"
        return f"<<{expr}={text}>>{_p(value)}"

    def answer(self) -> str:
        """The reasoning lines followed by the #### line."""
        return "\n".join(self.lines) + "\n#### " + self.last


Template = Callable[[random.Random, _Work], str]


def _shopping(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    item1, item2 = rng.sample(_SHOP_ITEMS, 2)
    a, b = rng.randint(2, 6), rng.randint(2, 5)
    p1, p2 = _cents(rng, 100, 900, 25), _cents(rng, 50, 600, 5)
    c1, c2 = a * p1, b * p2
    total = c1 + c2
    bill = 50 if total < 50 else 100
    w.lines += [
        f"The {item1} cost {a} x {_d(p1)} = {w.calc(f'{a}*{_n(p1)}', c1, True)}.",
        f"The {item2} cost {b} x {_d(p2)} = {w.calc(f'{b}*{_n(p2)}', c2, True)}.",
        f"Together {p.he} spends {_d(c1)} + {_d(c2)} = {w.calc(f'{_n(c1)}+{_n(c2)}', total, True)}.",
        f"{p.He} gets back {_d(bill)} - {_d(total)} = {w.calc(f'{bill}-{_n(total)}', bill - total, True)}.",
    ]
    return (
        f"{p.name} buys {a} {item1} for {_d(p1)} each and {b} {item2} for {_d(p2)} each. "
        f"{p.He} pays with a {_d(bill)} bill. How much change does {p.he} get back?"
    )


def _road_trip(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    s1, h1, s2, h2 = rng.randint(35, 75), rng.randint(2, 6), rng.randint(40, 80), rng.randint(1, 5)
    k = rng.randint(2, 6)
    d1, d2 = s1 * h1, s2 * h2
    trip = d1 + d2
    w.lines += [
        f"First {p.he} covers {s1} x {h1} = {w.calc(f'{s1}*{h1}', d1)} miles.",
        f"Then {p.he} covers {s2} x {h2} = {w.calc(f'{s2}*{h2}', d2)} miles.",
        f"One trip is {d1} + {d2} = {w.calc(f'{d1}+{d2}', trip)} miles.",
        f"In {k} trips {p.he} drives {trip} x {k} = {w.calc(f'{trip}*{k}', trip * k)} miles.",
    ]
    return (
        f"{p.name} drives at {s1} miles per hour for {h1} hours, then at {s2} miles per hour for another "
        f"{h2} hours. {p.He} makes the same trip {k} times this month. How many miles does {p.he} drive "
        "this month?"
    )


def _ages(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    rel = rng.choice(_RELATIVES)
    a, k, y = rng.randint(9, 16), rng.randint(3, 4), rng.randint(2, 12)
    b = a * k
    w.lines += [
        f"{p.name}'s {rel} is {a} x {k} = {w.calc(f'{a}*{k}', b)} years old.",
        f"In {y} years {p.name} will be {a} + {y} = {w.calc(f'{a}+{y}', a + y)} years old "
        f"and {p.his} {rel} will be {b} + {y} = {w.calc(f'{b}+{y}', b + y)} years old.",
        f"The sum of their ages will be {a + y} + {b + y} = {w.calc(f'{a + y}+{b + y}', a + b + 2 * y)}.",
    ]
    return (
        f"{p.name} is {a} years old. {p.His} {rel} is {k} times as old as {p.name}. "
        f"In {y} years, what will be the sum of their ages?"
    )


def _sharing(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    things = rng.choice(_SHARE_ITEMS)
    k, each, keep = rng.randint(3, 8), rng.randint(4, 25), rng.randint(2, 15)
    rest = k * each
    total = rest + keep
    w.lines += [
        f"{p.He} shares {total} - {keep} = {w.calc(f'{total}-{keep}', rest)} {things}.",
        f"Each friend gets {rest} / {k} = {w.calc(f'{rest}/{k}', each)} {things}.",
    ]
    return (
        f"{p.name} has {total} {things}. {p.He} keeps {keep} for {p.himself} and shares the rest equally "
        f"among {k} friends. How many {things} does each friend get?"
    )


def _discount(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    item = rng.choice(_SALE_ITEMS)
    price, pct, q = rng.randint(12, 240), rng.choice((10, 15, 20, 25, 30, 35, 40)), rng.randint(2, 5)
    off = Decimal(price * pct) * _CENT
    sale = price - off
    w.lines += [
        f"The discount is {_d(price)} x {pct}/100 = {w.calc(f'{price}*{pct}/100', off, True)}.",
        f"Each {item} costs {_d(price)} - {_d(off)} = {w.calc(f'{price}-{_n(off)}', sale, True)}.",
        f"{p.He} spends {q} x {_d(sale)} = {w.calc(f'{q}*{_n(sale)}', q * sale, True)}.",
    ]
    return (
        f"{_a(item).capitalize()} normally costs {_d(price)}. This week it is {pct}% off. "
        f"{p.name} buys {q} of them. How much does {p.he} spend?"
    )


def _temperature(rng: random.Random, w: _Work) -> str:
    city = rng.choice(_CITIES)
    t0, drop, hours, rise = rng.randint(-4, 12), rng.randint(2, 6), rng.randint(3, 7), rng.randint(2, 9)
    fall = drop * hours
    t1 = t0 - fall
    w.lines += [
        f"The temperature fell {drop} x {hours} = {w.calc(f'{drop}*{hours}', fall)} degrees.",
        f"Before sunrise it was {t0} - {fall} = {w.calc(f'{t0}-{fall}', t1)} degrees.",
        f"At sunrise it was {t1} + {rise} = {w.calc(f'{t1}+{rise}', t1 + rise)} degrees.",
    ]
    return (
        f"At midnight the temperature in {city} was {t0} degrees. It dropped {drop} degrees every hour for "
        f"the next {hours} hours, then rose {rise} degrees by sunrise. What was the temperature at sunrise?"
    )


def _savings(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    thing = rng.choice(_BIG_ITEMS)
    start, weekly, weeks = rng.randrange(200, 4000, 50), rng.randrange(25, 300, 5), rng.randint(4, 20)
    added = weekly * weeks
    total = start + added
    spent = rng.randrange(150, min(1500, total), 10)
    w.lines += [
        f"{p.He} adds {_d(weekly)} x {weeks} = {w.calc(f'{weekly}*{weeks}', added, True)}.",
        f"Before shopping {p.he} has {_d(start)} + {_d(added)} = {w.calc(f'{start}+{added}', total, True)}.",
        f"After buying the {thing} {p.he} has {_d(total)} - {_d(spent)} = "
        f"{w.calc(f'{total}-{spent}', total - spent, True)} left.",
    ]
    return (
        f"{p.name} has {_d(start)} in {p.his} savings account. {p.He} adds {_d(weekly)} every week for "
        f"{weeks} weeks, then spends {_d(spent)} on a new {thing}. How much money is left in the account?"
    )


def _recipe(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    food = rng.choice(_BAKES)
    batch = rng.choice((6, 8, 10, 12, 15, 16, 20, 24))
    flour, sugar = Decimal(rng.randrange(6, 19)) / 4, Decimal(rng.randrange(2, 9)) / 4
    batches = rng.randint(2, 6)
    want = batch * batches
    f_total, s_total = flour * batches, sugar * batches
    w.lines += [
        f"{p.He} needs {want} / {batch} = {w.calc(f'{want}/{batch}', batches)} batches.",
        f"That is {_p(flour)} x {batches} = {w.calc(f'{_n(flour)}*{batches}', f_total)} cups of flour "
        f"and {_p(sugar)} x {batches} = {w.calc(f'{_n(sugar)}*{batches}', s_total)} cups of sugar.",
        f"Altogether {p.he} needs {_p(f_total)} + {_p(s_total)} = "
        f"{w.calc(f'{_n(f_total)}+{_n(s_total)}', f_total + s_total)} cups.",
    ]
    return (
        f"A recipe for {batch} {food} uses {_p(flour)} cups of flour and {_p(sugar)} cups of sugar. "
        f"{p.name} wants to bake {want} {food}. How many cups of flour and sugar does {p.he} need altogether?"
    )


def _submarine(rng: random.Random, w: _Work) -> str:
    vessel = rng.choice(_VESSELS)
    depth, dive = rng.randrange(200, 2400, 10), rng.randrange(20, 600, 5)
    rate, minutes = rng.randint(5, 20), rng.randint(3, 10)
    e1, up = -depth - dive, rate * minutes
    w.lines += [
        f"After diving it is at {_p(-depth)} - {dive} = {w.calc(f'{-depth}-{dive}', e1)} feet.",
        f"It rises {rate} x {minutes} = {w.calc(f'{rate}*{minutes}', up)} feet.",
        f"Its elevation is now {_p(e1)} + {up} = {w.calc(f'{e1}+{up}', e1 + up)} feet.",
    ]
    return (
        f"{_a(vessel).capitalize()} is at an elevation of {_p(-depth)} feet. It dives another {dive} feet, "
        f"then rises {rate} feet per minute for {minutes} minutes. What is its elevation now, in feet?"
    )


def _balance(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    bill1, bill2 = rng.sample(_BILLS, 2)
    bal, c1, c2, dep = (
        rng.randrange(120, 900, 5),
        rng.randrange(80, 600, 5),
        rng.randrange(50, 400, 5),
        rng.randrange(20, 300, 5),
    )
    paid = c1 + c2
    b1 = bal - paid
    w.lines += [
        f"The bills total {_d(c1)} + {_d(c2)} = {w.calc(f'{c1}+{c2}', paid, True)}.",
        f"After paying them {p.his} balance is {bal} - {paid} = {w.calc(f'{bal}-{paid}', b1)} dollars.",
        f"After the deposit it is {b1} + {dep} = {w.calc(f'{b1}+{dep}', b1 + dep)} dollars.",
    ]
    return (
        f"{p.name} has {_d(bal)} in {p.his} checking account. {p.He} pays {_a(bill1)} bill of {_d(c1)} and "
        f"{_a(bill2)} bill of {_d(c2)}, then deposits {_d(dep)}. "
        f"What is {p.his} account balance now, in dollars?"
    )


def _wages(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    wage, hours, days = _cents(rng, 1200, 3500, 25), rng.randint(4, 9), rng.randint(5, 24)
    fare = _cents(rng, 150, 700, 25)
    daily = wage * hours
    earned, fares = daily * days, fare * days
    w.lines += [
        f"Each day {p.he} earns {_d(wage)} x {hours} = {w.calc(f'{_n(wage)}*{hours}', daily, True)}.",
        f"In {days} days {p.he} earns {_d(daily)} x {days} = {w.calc(f'{_n(daily)}*{days}', earned, True)}.",
        f"Bus fare costs {_d(fare)} x {days} = {w.calc(f'{_n(fare)}*{days}', fares, True)}.",
        f"{p.He} keeps {_d(earned)} - {_d(fares)} = "
        f"{w.calc(f'{_n(earned)}-{_n(fares)}', earned - fares, True)}.",
    ]
    return (
        f"{p.name} earns {_d(wage)} per hour and works {hours} hours a day for {days} days this month. "
        f"{p.He} pays {_d(fare)} in bus fare each day {p.he} works. "
        f"How much money does {p.he} keep this month?"
    )


def _fence(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    plot = rng.choice(_PLOTS)
    length, width, price = rng.randint(12, 80), rng.randint(8, 60), _cents(rng, 150, 1200, 25)
    perim = 2 * (length + width)
    w.lines += [
        f"The perimeter is 2 x ({length} + {width}) = {w.calc(f'2*({length}+{width})', perim)} feet.",
        f"The fence costs {_p(perim)} x {_d(price)} = {w.calc(f'{perim}*{_n(price)}', perim * price, True)}.",
    ]
    return (
        f"A rectangular {plot} is {length} feet long and {width} feet wide. {p.name} wants to put a fence "
        f"around it. Fencing costs {_d(price)} per foot. How much will the fence cost?"
    )


def _reading(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    per_day, done, more = rng.randint(8, 40), rng.randint(2, 9), rng.randint(3, 15)
    read, left = per_day * done, per_day * more
    pages = read + left
    w.lines += [
        f"{p.He} has read {per_day} x {done} = {w.calc(f'{per_day}*{done}', read)} pages.",
        f"There are {pages} - {read} = {w.calc(f'{pages}-{read}', left)} pages left.",
        f"It will take {left} / {per_day} = {w.calc(f'{left}/{per_day}', more)} more days.",
    ]
    return (
        f"{p.name}'s book has {pages} pages. {p.He} reads {per_day} pages every day and has been reading for "
        f"{done} days. How many more days will it take {p.him} to finish the book?"
    )


def _factory(rng: random.Random, w: _Work) -> str:
    one, many = rng.choice(_PRODUCTS)
    rate, hours, days = rng.randint(45, 400), rng.randint(6, 16), rng.randint(5, 26)
    price = _cents(rng, 50, 900, 5)
    daily = rate * hours
    made = daily * days
    w.lines += [
        f"Each day it makes {rate} x {hours} = {w.calc(f'{rate}*{hours}', daily)} {many}.",
        f"In {days} days it makes {_p(daily)} x {days} = {w.calc(f'{daily}*{days}', made)} {many}.",
        f"They sell for {_p(made)} x {_d(price)} = {w.calc(f'{made}*{_n(price)}', made * price, True)}.",
    ]
    return (
        f"A factory makes {rate} {many} per hour and runs {hours} hours a day. Each {one} sells for "
        f"{_d(price)}. How much money does the factory make from {days} days of production?"
    )


def _school(rng: random.Random, w: _Work) -> str:
    school = rng.choice(_SCHOOLS)
    students, pct = 20 * rng.randint(15, 90), rng.choice((15, 20, 25, 30, 35, 40, 45, 55, 60, 65))
    bus = students * pct // 100
    rest = students - bus
    bikes = rng.randrange(10, rest // 3)
    w.lines += [
        f"{_p(students)} x {pct}/100 = {w.calc(f'{students}*{pct}/100', bus)} students ride the bus.",
        f"{_p(students)} - {_p(bus)} = {w.calc(f'{students}-{bus}', rest)} students do not ride the bus.",
        f"{_p(rest)} - {bikes} = {w.calc(f'{rest}-{bikes}', rest - bikes)} students walk.",
    ]
    return (
        f"{school} has {_p(students)} students. {pct}% of them ride the bus, {bikes} of the others ride "
        "their bikes, and the rest walk. How many students walk to school?"
    )


def _running(rng: random.Random, w: _Work) -> str:
    p = rng.choice(_PEOPLE)
    track, laps, days = rng.choice((200, 250, 400)), rng.randint(3, 12), rng.randint(3, 7)
    daily = track * laps
    meters = daily * days
    w.lines += [
        f"Each day {p.he} runs {laps} x {track} = {w.calc(f'{laps}*{track}', daily)} meters.",
        f"In {days} days {p.he} runs {_p(daily)} x {days} = {w.calc(f'{daily}*{days}', meters)} meters.",
        f"That is {_p(meters)} / 1,000 = {w.calc(f'{meters}/1000', Decimal(meters) / 1000)} kilometers.",
    ]
    return (
        f"{p.name} runs {laps} laps around a {track}-meter track every day. How many kilometers does "
        f"{p.he} run in {days} days?"
    )


_TEMPLATES: tuple[Template, ...] = (
    _shopping,
    _road_trip,
    _ages,
    _sharing,
    _discount,
    _temperature,
    _savings,
    _recipe,
    _submarine,
    _balance,
    _wages,
    _fence,
    _reading,
    _factory,
    _school,
    _running,
)


def _row(key: str) -> dict[str, str]:
    """One row, fully determined by `key`."""
    rng = random.Random(key)
    work = _Work()
    question = _TEMPLATES[rng.randrange(len(_TEMPLATES))](rng, work)
    return {"question": question, "answer": work.answer()}


def generate_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Return n GSM8K-format rows; row i depends only on (seed, i)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_row(f"{seed}:{i}") for i in range(n)]


def generate_splits(
    n_train: int, n_test: int, seed: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Train and test rows; no test question appears in train."""
    if n_test < 0:
        raise ValueError(f"n_test must be >= 0, got {n_test}")
    train = generate_rows(n_train, seed)
    seen = {row["question"] for row in train}
    test: list[dict[str, str]] = []
    i = 0
    while len(test) < n_test:
        row = _row(f"{_TEST_SALT}:{seed}:{i}")
        i += 1
        if row["question"] not in seen:
            test.append(row)
    return train, test
