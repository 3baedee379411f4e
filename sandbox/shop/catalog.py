"""What the shop had before the demo history: the catalog and customers imported from the old shop."""

import base64

from .models import Product

C = Product.Category
S = Product.Status

#: sku, name, category, status, price, stock, attributes, tags, description
CATALOG = [
    (
        "COF-ETH-250",
        "Ethiopia Yirgacheffe 250 g",
        C.COFFEE,
        S.ACTIVE,
        "14.90",
        40,
        {"origin": "Ethiopia", "process": "washed", "roast": "light"},
        ["single-origin", "light-roast"],
        "Floral and bright, with notes of jasmine, bergamot and lemon. Roasted every Monday in small batches.",
    ),
    (
        "COF-COL-DEC",
        "Decaf Colombia 250 g",
        C.COFFEE,
        S.ACTIVE,
        "12.50",
        12,
        {"origin": "Colombia", "process": "sugarcane decaf", "roast": "medium"},
        ["decaf"],
        "All of the chocolate and caramel, none of the caffeine.",
    ),
    (
        "COF-BRA-1000",
        "Brazil Cerrado 1 kg",
        C.COFFEE,
        S.ACTIVE,
        "39.00",
        25,
        {"origin": "Brazil", "process": "natural", "roast": "medium-dark"},
        ["espresso", "bulk"],
        "Nutty and sweet; our house espresso.",
    ),
    (
        "COF-GUA-250",
        "Guatemala Huehuetenango 250 g",
        C.COFFEE,
        S.ACTIVE,
        "15.50",
        18,
        {"origin": "Guatemala", "process": "washed", "roast": "medium"},
        ["single-origin"],
        "Red apple, milk chocolate and a long, clean finish.",
    ),
    (
        "TEA-SEN-100",
        "Sencha Fukamushi 100 g",
        C.TEA,
        S.ACTIVE,
        "11.00",
        30,
        {"origin": "Japan", "harvest": "first flush"},
        ["green-tea"],
        "Deep-steamed green tea, grassy and sweet.",
    ),
    (
        "TEA-MAT-030",
        "Ceremonial Matcha 30 g",
        C.TEA,
        S.ACTIVE,
        "24.00",
        15,
        {"origin": "Japan", "grade": "ceremonial"},
        ["green-tea", "matcha"],
        "Stone-ground, vivid green, umami-rich.",
    ),
    (
        "BRW-V60-02",
        "Hario V60 dripper, size 02",
        C.BREWING,
        S.ACTIVE,
        "24.90",
        22,
        {"material": "ceramic", "cups": "1-4"},
        ["pour-over"],
        "The classic cone with spiral ribs and one large hole.",
    ),
    (
        "BRW-CHX-06",
        "Chemex 6-cup",
        C.BREWING,
        S.ACTIVE,
        "49.00",
        8,
        {"material": "glass", "capacity_ml": 900},
        ["pour-over", "gift"],
        "Hand-blown glass and a wooden collar.",
    ),
    (
        "BRW-AER-01",
        "AeroPress Original",
        C.BREWING,
        S.ACTIVE,
        "34.90",
        30,
        {"material": "polypropylene"},
        ["travel"],
        "Immersion plus pressure: forgiving and fast.",
    ),
    (
        "GRD-ENC-01",
        "Baratza Encore grinder",
        C.GRINDERS,
        S.ACTIVE,
        "149.00",
        5,
        {"burrs": "conical, 40 mm", "settings": 40},
        ["electric"],
        "The entry-level grinder we recommend most.",
    ),
    (
        "ACC-KET-10",
        "Gooseneck kettle 1 l",
        C.ACCESSORIES,
        S.ACTIVE,
        "39.90",
        14,
        {"material": "stainless steel", "capacity_ml": 1000},
        ["pour-over"],
        "A thin spout for a steady, slow pour.",
    ),
    (
        "ACC-APR-01",
        "Barista apron",
        C.ACCESSORIES,
        S.DRAFT,
        "29.00",
        0,
        {"material": "waxed canvas", "colour": "tobacco"},
        [],
        "Leather straps, two pockets.",
    ),
]

#: name, email, phone, customer since (days before the import)
CUSTOMERS = [
    ("Ingrid Berg", "ingrid.berg@example.com", "+47 912 34 567", 820),
    ("Lars Olsen", "Lars.Olsen@Example.com", "+47 934 56 789", 610),
    ("Maja Nilsen", "maja.nilsen@example.com", "", 402),
    ("Sofia Lind", "SOFIA.LIND@example.com", "+46 70 123 45 67", 199),
    ("Jonas Dahl", "jonas.dahl@example.com", "+47 988 77 665", 48),
    ("Test Testesen", "test@example.com", "", 3),
]

#: A 1x1 PNG: the "label" the carrier's API returns.
LABEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
