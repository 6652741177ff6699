"""Indirect Object Identification (Wang et al. 2022, "Interpretability in the Wild").

Clean: "When Mary and John went to the store, John gave a drink to" -> answer " Mary" (the
indirect object, IO); contrast " John" (the subject, S). The first clause names IO and S in
either order: ABBA (IO first, "Mary and John ... John") or BABA (S first, "John and Mary ...
John"); the second clause repeats S (S2) and the prompt stops before the IO.

Corruptions (option `corruption`):
  * "abc" (default; the paper's ABC dataset): the three name occurrences are replaced by three
    fresh distinct names ("When Alice and Bob went ..., Carol gave a drink to"), so no name is
    repeated and nothing singles out an indirect object.
  * "flip": IO and S swap names at every occurrence ("When John and Mary went ..., Mary gave a
    drink to" -> the correct answer becomes " John"), so the clean logit difference changes
    sign. (Swapping them in the first clause only would just turn ABBA into BABA and keep the
    answer, so it would not corrupt anything.)

Differences from the paper: our own 16 templates in the style of the paper's (same structure,
not the same sentences), 40 names, 15 places and 17 objects; all names are common one-word
first names so that each is a single token with its leading space.

Spans (character ranges in the clean prompt, each word with its leading space): "IO" and "S1"
(the names in the first clause), "S2" (the repeated subject), "end" (the last word, " to" or
similar, where the answer is predicted). Meta: template (index), order ("ABBA"/"BABA"), io, s.
"""

from __future__ import annotations

import random

from mechjax.data.tasks._text import check_choice, check_options, end_span, fill
from mechjax.data.tasks.base import Prompts, register

NAMES = (
    "Mary", "John", "Tom", "James", "Paul", "Mark", "David", "Michael", "Robert", "Daniel",
    "Sarah", "Anna", "Laura", "Emma", "Kate", "Lisa", "Jane", "Alice", "Bob", "Peter",
    "Chris", "Adam", "Ben", "Sam", "Max", "Jack", "Luke", "Ryan", "Eric", "Alex",
    "Rachel", "Amy", "Emily", "Grace", "Helen", "Susan", "Linda", "Karen", "Steve", "Tim",
)  # fmt: skip
PLACES = (
    "store", "garden", "restaurant", "school", "hospital", "office", "station", "house",
    "park", "beach", "market", "library", "church", "airport", "cafe",
)  # fmt: skip
# consonant-initial, so "a {object}" stays grammatical
OBJECTS = (
    "drink", "book", "ring", "bone", "kiss", "snack", "necklace", "basketball", "computer",
    "ball", "letter", "key", "bag", "gift", "cake", "flower", "hat",
)  # fmt: skip

# {A} and {B} are the first-clause names (IO/S in ABBA order, S/IO in BABA), {S} the repeat
TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {object} to",
    "Then, {A} and {B} went to the {place}. {S} gave a {object} to",
    "Then, {A} and {B} had a lot of fun at the {place}. {S} gave a {object} to",
    "Then, {A} and {B} were working at the {place}. {S} decided to give a {object} to",
    "Then, {A} and {B} were thinking about going to the {place}. {S} wanted to give a {object} to",
    "Then, {A} and {B} had a long argument, and afterwards {S} said to",
    "After {A} and {B} went to the {place}, {S} gave a {object} to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give it to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give the {object} to",
    "While {A} and {B} were working at the {place}, {S} gave a {object} to",
    "While {A} and {B} were commuting to the {place}, {S} gave a {object} to",
    "After the lunch, {A} and {B} went to the {place}. {S} gave a {object} to",
    "Afterwards, {A} and {B} went to the {place}. Then, {S} gave a {object} to",
    "Then, {A} and {B} had a long argument. Afterwards {S} said to",
    "The {place} {A} and {B} went to had a {object}. {S} gave it to",
    "Friends {A} and {B} found a {object} at the {place}. {S} gave it to",
)

ORDERS = ("ABBA", "BABA", "mixed")
CORRUPTIONS = ("abc", "flip")


def _text(template: str, io: str, s: str, s2: str, order: str, place: str, obj: str):
    a, b = (io, s) if order == "ABBA" else (s, io)
    values = {"A": a, "B": b, "S": s2, "place": place, "object": obj}
    return fill(template, values)


@register("ioi")
def ioi(n: int, seed: int = 0, split: str | None = None, **options) -> Prompts:
    """`n` IOI prompts. Options: order in ("ABBA", "BABA", "mixed"; default "mixed"),
    corruption in ("abc", "flip"; default "abc"). See the module docstring.

    `split` ("train" / "val" / "test") uses the split grammar below (frame x setting x
    action, names / places / objects split too; name_bank "v2" = `V2_NAMES` or "wide" =
    `V2_NAMES + WIDE_NAMES`, split by hash threshold, so a name keeps its split in both;
    grammar "v2" or "v3" = v2 with a split adverb after the repeated subject in half the
    prompts); None the legacy 16 templates."""
    if split is not None:
        opts = check_options(
            "ioi",
            options,
            {"order": "mixed", "corruption": "abc", "name_bank": "v2", "grammar": "v2"},
        )
        check_choice("ioi", "name_bank", opts["name_bank"], tuple(NAME_BANKS))
        check_choice("ioi", "grammar", opts["grammar"], GRAMMARS)
    else:
        opts = check_options("ioi", options, {"order": "mixed", "corruption": "abc"})
    check_choice("ioi", "order", opts["order"], ORDERS)
    check_choice("ioi", "corruption", opts["corruption"], CORRUPTIONS)
    if split is not None:
        return _ioi_split(n, seed, split, opts)
    rng = random.Random(seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {"template": [], "order": [], "io": [], "s": []}
    for _ in range(n):
        t = rng.randrange(len(TEMPLATES))
        order = opts["order"] if opts["order"] != "mixed" else rng.choice(ORDERS[:2])
        io, s, x, y, z = rng.sample(NAMES, 5)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        text, sp = _text(TEMPLATES[t], io, s, s, order, place, obj)
        if opts["corruption"] == "abc":
            # fresh names for IO, S1 and S2 (all distinct, so S2 repeats nobody)
            bad, _ = _text(TEMPLATES[t], x, y, z, order, place, obj)
        else:
            bad, _ = _text(TEMPLATES[t], s, io, io, order, place, obj)
        a, b = (sp["A"], sp["B"]) if order == "ABBA" else (sp["B"], sp["A"])
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + io,))
        contrasts.append((" " + s,))
        spans.append({"IO": a, "S1": b, "S2": sp["S"], "end": end_span(text)})
        for k, v in (("template", t), ("order", order), ("io", io), ("s", s)):
            meta[k].append(v)
    return Prompts.from_lists("ioi", clean, corrupted, answers, contrasts, spans, meta)


# ---- split mode (`split=` "train" / "val" / "test"; see mechjax.data.tasks.splits) --------
# A template is frame x setting x action, each slot split between train / val / test, so a
# held-out template has a clause structure (frame), a first clause and a second clause that no
# training template has. Names, places and objects are split too.

V2_NAMES = (
    "Mary", "John", "Tom", "James", "Paul", "Mark", "David", "Michael", "Robert", "Daniel",
    "Sarah", "Anna", "Laura", "Emma", "Kate", "Lisa", "Jane", "Alice", "Bob", "Peter",
    "Chris", "Adam", "Ben", "Sam", "Max", "Jack", "Luke", "Ryan", "Eric", "Alex",
    "Rachel", "Amy", "Emily", "Grace", "Helen", "Susan", "Linda", "Karen", "Steve", "Tim",
    "Anne", "Bill", "Carl", "Dan", "Ed", "Frank", "Fred", "George", "Harry", "Henry",
    "Jim", "Joe", "Ken", "Larry", "Leo", "Matt", "Mike", "Nick", "Noah", "Oscar",
    "Pat", "Phil", "Ray", "Rick", "Ron", "Roy", "Ted", "Tony", "Will", "Zoe",
    "Beth", "Claire", "Diana", "Eva", "Holly", "Iris", "Jill", "Julia", "June", "Lucy",
    "Maria", "Megan", "Nina", "Nora", "Olivia", "Paula", "Rose", "Ruth", "Sophie", "Tina",
    "Adrian", "Brian", "Colin", "Dennis", "Gary", "Ian", "Kevin", "Martin", "Neil", "Simon",
)  # fmt: skip
# The "wide" name bank (option name_bank="wide"): V2_NAMES plus these 300 first names, the
# most frequent female and male names (alternating) of the US Social Security
# Administration's frequency tables as Faker's en_US person provider lists them, not already
# above, frozen here. With only V2_NAMES' train share a model can learn the names rather
# than the copy (experiments/zoo/README.md, "Docstring: the names, not the templates").
WIDE_NAMES = (
    "Jennifer", "Jessica", "Kimberly", "Amanda", "Michelle", "Elizabeth", "Matthew",
    "Melissa", "William", "Ashley", "Joseph", "Stephanie", "Jason", "Joshua", "Angela",
    "Nicole", "Thomas", "Heather", "Richard", "Rebecca", "Anthony", "Andrew", "Kelly",
    "Steven", "Timothy", "Jeffrey", "Christina", "Patricia", "Charles", "Julie", "Scott",
    "Samantha", "Justin", "Nicholas", "Cynthia", "Jonathan", "Christine", "Brandon",
    "Brittany", "Lauren", "Kenneth", "Amber", "Jacob", "Andrea", "Gregory", "Danielle",
    "Stephen", "Tiffany", "Patrick", "Katherine", "Aaron", "Tammy", "Benjamin", "Sandra",
    "Kyle", "Jeremy", "Crystal", "Tyler", "Lori", "Zachary", "Shannon", "Ronald", "Pamela",
    "Edward", "Brenda", "Donald", "Donna", "Sean", "Sara", "Jose", "Erin", "Alexander",
    "Deborah", "Nathan", "Victoria", "Samuel", "Jamie", "Keith", "Teresa", "Bryan",
    "Kathleen", "Douglas", "Nancy", "Shawn", "Dawn", "Tracy", "Courtney", "Todd", "Barbara",
    "Travis", "Jesse", "Sharon", "Chad", "Bradley", "Kayla", "Austin", "Denise", "April",
    "Cody", "Catherine", "Raymond", "Kristen", "Jordan", "Erica", "Craig", "Monica",
    "Hannah", "Kathryn", "Juan", "Cheryl", "Jerry", "Debra", "Christian", "Robin", "Derek",
    "Wendy", "Dustin", "Taylor", "Randy", "Margaret", "Terry", "Vanessa", "Phillip",
    "Alicia", "Troy", "Allison", "Carlos", "Jeffery", "Natalie", "Marcus", "Kristin",
    "Jared", "Leslie", "Joel", "Michele", "Shane", "Theresa", "Vincent", "Alexis", "Corey",
    "Melanie", "Luis", "Dana", "Antonio", "Cindy", "Alan", "Victor", "Dylan", "Alyssa",
    "Philip", "Valerie", "Brett", "Tara", "Rodney", "Stacy", "Curtis", "Diane", "Johnny",
    "Katie", "Jasmine", "Russell", "Veronica", "Carol", "Roger", "Carrie", "Rhonda", "Erik",
    "Gina", "Derrick", "Stacey", "Gabriel", "Alexandra", "Brent", "Chelsea", "Nathaniel",
    "Kathy", "Bruce", "Carolyn", "Danny", "Lindsey", "Ann", "Ricky", "Renee", "Brianna",
    "Morgan", "Cory", "Kim", "Cameron", "Cassandra", "Billy", "Janet", "Mitchell", "Wesley",
    "Kelsey", "Trevor", "Sherry", "Allen", "Brooke", "Lawrence", "Tonya", "Bobby",
    "Kristina", "Gerald", "Jesus", "Heidi", "Sheila", "Randall", "Laurie", "Wayne",
    "Lindsay", "Jimmy", "Brandy", "Evan", "Tamara", "Jon", "Erika", "Seth", "Walter",
    "Melinda", "Brandi", "Caleb", "Deanna", "Casey", "Abigail", "Marc", "Tanya", "Miguel",
    "Madison", "Jay", "Leah", "Andre", "Carla", "Suzanne", "Willie", "Regina", "Arthur",
    "Sabrina", "Manuel", "Debbie", "Colleen", "Logan", "Terri", "Albert", "Connie", "Devin",
    "Caitlin", "Jenna", "Micheal", "Natasha", "Jeff", "Felicia", "Darren", "Molly", "Mario",
    "Whitney", "Lee", "Janice", "Marissa", "Darrell", "Shelby", "Blake", "Brittney",
    "Louis", "Katrina", "Jeremiah", "Misty", "Ricardo", "Haley", "Jorge", "Kara", "Dale",
    "Lynn", "Calvin", "Marie", "Ethan", "Tracey", "Garrett", "Alison", "Edwin", "Virginia",
    "Glenn", "Annette", "Frederick", "Meghan", "Barry", "Kaitlyn", "Lucas", "Katelyn",
    "Francisco", "Miranda", "Lance", "Christy", "Hunter", "Cathy", "Isaac", "Kendra",
    "Brad", "Anita", "Connor", "Bonnie",
)  # fmt: skip
NAME_BANKS = {"v2": V2_NAMES, "wide": V2_NAMES + WIDE_NAMES}
V2_PLACES = (
    "store", "garden", "restaurant", "school", "hospital", "office", "station", "house",
    "park", "beach", "market", "library", "church", "airport", "cafe", "museum", "theater",
    "bakery", "gym", "harbor", "hotel", "kitchen", "lake", "farm", "bank", "zoo", "castle",
    "forest", "mall", "stadium", "bridge", "square", "village", "island", "pool", "studio",
)  # fmt: skip
V2_OBJECTS = (
    "drink", "book", "ring", "bone", "kiss", "snack", "necklace", "basketball", "computer",
    "ball", "letter", "key", "bag", "gift", "cake", "flower", "hat", "pen", "map", "coin",
    "box", "card", "cup", "lamp", "phone", "shirt", "toy", "watch", "banana", "pie",
    "sandwich", "bottle", "candle", "jacket", "kite", "ticket",
)  # fmt: skip
# every frame starts with a word, so that each name follows a space (" Mary" is the token)
V2_FRAMES = (
    "When {C1}, {C2}", "After {C1}, {C2}", "Then {C1}. After that, {C2}",
    "One morning {C1}, and then {C2}", "While {C1}, {C2}", "Today {C1}. Afterwards, {C2}",
    "Once {C1}, {C2}", "As soon as {C1}, {C2}", "That day {C1}. Later that day, {C2}",
    "Earlier {C1}; a bit later {C2}", "Yesterday {C1}, and {C2}", "Because {C1}, {C2}",
    "Last night {C1}. The next morning, {C2}", "Just after {C1}, {C2}",
    "Later {C1}. Soon after, {C2}", "At first {C1}. In the end, {C2}", "Luckily {C1}, so {C2}",
    "On Monday {C1}. At some point, {C2}", "Earlier today {C1}. Then {C2}",
    "It was late when {C1}, and {C2}", "Suddenly {C1}. A few minutes later, {C2}",
    "Last week {C1}. Eventually {C2}", "Since {C1}, {C2}", "Before long {C1}, and {C2}",
    "In the afternoon {C1}. After a while, {C2}",
)  # fmt: skip
V2_SETTINGS = (
    "{A} and {B} went to the {place}", "{A} and {B} were at the {place}",
    "{A} met {B} at the {place}", "{A} and {B} were working at the {place}",
    "{A} and {B} arrived at the {place}", "{A} walked with {B} to the {place}",
    "{A} and {B} had lunch at the {place}", "{A} and {B} got a {object} at the {place}",
    "{A} and {B} were waiting at the {place}", "{A} joined {B} at the {place}",
    "{A} and {B} cleaned the {place}", "{A} and {B} spent the day at the {place}",
    "{A} and {B} visited the {place}", "{A} ran into {B} at the {place}",
    "{A} and {B} sat down in the {place}", "{A} drove {B} to the {place}",
    "{A} and {B} were chatting at the {place}", "{A} and {B} left the {place}",
    "{A} and {B} looked around the {place}", "{A} and {B} stopped by the {place}",
    "{A} and {B} came back from the {place}", "{A} and {B} had a long talk at the {place}",
    "{A} and {B} played a game at the {place}", "{A} found {B} at the {place}",
)  # fmt: skip
V2_ACTIONS = (
    "{S} gave a {object} to", "{S} handed the {object} to", "{S} passed the {object} to",
    "{S} threw the {object} to", "{S} sent a {object} to", "{S} showed the {object} to",
    "{S} offered a {object} to", "{S} lent the {object} to", "{S} brought a {object} to",
    "{S} sold the {object} to", "{S} mailed a {object} to", "{S} returned the {object} to",
    "{S} tossed the {object} to", "{S} gave the {object} back to",
    "{S} decided to give a {object} to", "{S} wanted to hand the {object} to",
    "{S} said goodbye to", "{S} waved at", "{S} smiled at", "{S} talked to",
    "{S} wrote a letter to", "{S} read a story to", "{S} sang a song for",
    "{S} made a {object} for", "{S} bought a {object} for", "{S} baked a cake for",
    "{S} left a note for", "{S} kept a seat for",
)  # fmt: skip


# grammar "v3" (option grammar="v3"): v2 with an adverb after the repeated subject in half
# the prompts ("{S} quickly gave a {object} to"), so the second clause varies in length as
# well as in wording; the adverbs are split like every other list
V3_ADVERBS = (
    "then", "quickly", "finally", "later", "happily", "suddenly", "kindly", "proudly",
    "quietly", "gladly", "soon", "calmly", "eagerly", "also", "promptly", "slowly",
    "politely", "secretly", "carefully", "warmly", "gently", "nervously", "cheerfully",
    "instantly", "immediately", "again", "briefly", "silently", "shyly", "boldly",
)  # fmt: skip
GRAMMARS = ("v2", "v3")


def _grammar():
    from mechjax.data.tasks.splits import Grammar

    return Grammar.of("ioi", frame=V2_FRAMES, setting=V2_SETTINGS, action=V2_ACTIONS)


def split_sets(split: str, name_bank: str = "v2", grammar: str = "v2") -> dict[str, tuple]:
    """The split's template pieces and entities (names of `name_bank`, places, objects; with
    `grammar="v3"` also the adverbs)."""
    from mechjax.data.tasks.splits import part

    check_choice("ioi", "grammar", grammar, GRAMMARS)
    g = _grammar().options(split)
    out = {
        **g,
        "name": part(NAME_BANKS[name_bank], "ioi/name", split),
        "place": part(V2_PLACES, "ioi/place", split),
        "object": part(V2_OBJECTS, "ioi/object", split),
    }
    if grammar == "v3":
        out["adverb"] = part(V3_ADVERBS, "ioi/adverb", split)
    return out


def template_count(split: str, grammar: str = "v2") -> int:
    """Distinct templates of `split` (v3: each v2 template with no adverb or one of the
    split's adverbs)."""
    n = _grammar().count(split)
    if grammar == "v3":
        n *= 1 + len(split_sets(split, grammar="v3")["adverb"])
    return n


def _ioi_split(n: int, seed: int, split: str, opts: dict) -> Prompts:
    from mechjax.data.tasks.splits import rng as split_rng

    sets = split_sets(split, opts["name_bank"], opts["grammar"])
    rng = split_rng("ioi", split, seed)
    clean, corrupted, answers, contrasts, spans = [], [], [], [], []
    meta = {k: [] for k in ("template", "frame", "setting", "action", "order", "io", "s")}
    meta.update(name=[], place=[], object=[])
    for _ in range(n):
        frame, setting, action = (rng.choice(sets[k]) for k in ("frame", "setting", "action"))
        adverb = ""
        if "adverb" in sets and rng.random() < 0.5:
            adverb = rng.choice(sets["adverb"])
            action = action.replace("{S}", "{S} " + adverb, 1)
        template = frame.replace("{C1}", setting).replace("{C2}", action)
        order = opts["order"] if opts["order"] != "mixed" else rng.choice(ORDERS[:2])
        io, s, x, y, z = rng.sample(sets["name"], 5)
        place, obj = rng.choice(sets["place"]), rng.choice(sets["object"])
        text, sp = _text(template, io, s, s, order, place, obj)
        if opts["corruption"] == "abc":
            bad, _ = _text(template, x, y, z, order, place, obj)
        else:
            bad, _ = _text(template, s, io, io, order, place, obj)
        a, b = (sp["A"], sp["B"]) if order == "ABBA" else (sp["B"], sp["A"])
        clean.append(text)
        corrupted.append(bad)
        answers.append((" " + io,))
        contrasts.append((" " + s,))
        spans.append({"IO": a, "S1": b, "S2": sp["S"], "end": end_span(text)})
        vals = (template, frame, setting, action, order, io, s, (io, s), place, obj)
        for k, v in zip(meta, vals):
            meta[k].append(v)
        if "adverb" in sets:
            meta.setdefault("adverb", []).append(adverb)
    return Prompts.from_lists("ioi", clean, corrupted, answers, contrasts, spans, meta)


def _register_splits():
    from mechjax.data.tasks.base import register_splits

    register_splits(
        "ioi",
        template_count,
        split_sets,
        lambda name_bank="v2", grammar="v2", **_: (
            NAME_BANKS[name_bank] + V2_PLACES + V2_OBJECTS + (V3_ADVERBS if grammar == "v3" else ())
        ),
    )


_register_splits()
