"""What the shop sells and how people ask for it: categories, brands, title words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Category:
    name: str  # the `category` label and the plainest query term
    group: str  # categories of one group are partly relevant to each other's queries
    synonyms: tuple[str, ...]  # query terms for the whole category (a few are also subtypes)
    subtypes: tuple[str, ...]  # the product noun of a title, also a query term
    brands: tuple[str, ...]
    colors: tuple[str, ...]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    price_median: float
    price_sigma: float


# fmt: off
CATALOG: tuple[Category, ...] = (
    Category(
        "drill", "tools", ("power drill", "cordless drill", "drill driver"),
        ("Cordless Drill", "Hammer Drill", "Drill Driver", "Impact Driver"),
        ("Bosch", "DeWalt", "Makita", "Ryobi", "Milwaukee"),
        ("Blue", "Yellow", "Teal", "Red", "Green"), ("12V", "18V", "20V"),
        ("Brushless", "Compact", "Kit", "LED Light", "Keyless Chuck"), 120.0, 0.45,
    ),
    Category(
        "circular saw", "tools", ("saw", "skil saw", "power saw"),
        ("Circular Saw", "Track Saw", "Mini Circular Saw", "Worm Drive Saw"),
        ("DeWalt", "Makita", "Skil", "Bosch", "Metabo"),
        ("Yellow", "Teal", "Red", "Green", "Black"), ("7-1/4 in", "6-1/2 in", "5-1/2 in"),
        ("Cordless", "Corded", "Laser Guide", "Brushless", "Dust Blower"), 140.0, 0.4,
    ),
    Category(
        "sofa", "furniture", ("couch", "settee", "loveseat"),
        ("Sofa", "Sectional Sofa", "Sleeper Sofa", "Loveseat"),
        ("Ikea", "Ashley", "Zinus", "Rivet", "Novogratz"),
        ("Gray", "Beige", "Navy", "Green", "Charcoal"), ("Velvet", "Linen", "Leather"),
        ("Reversible", "Modular", "3-Seater", "Mid-Century", "Tufted"), 650.0, 0.5,
    ),
    Category(
        "office chair", "furniture", ("desk chair", "computer chair", "task chair"),
        ("Office Chair", "Ergonomic Chair", "Gaming Chair", "Mesh Task Chair"),
        ("Herman Miller", "Steelcase", "Hbada", "Sihoo", "Ikea"),
        ("Black", "Gray", "White", "Blue"), ("Mesh", "Leather", "Fabric"),
        ("Lumbar Support", "Adjustable Armrests", "Headrest", "Swivel", "Reclining"), 220.0, 0.6,
    ),
    Category(
        "headphones", "audio", ("earbuds", "earphones", "headset"),
        ("Wireless Headphones", "Over-Ear Headphones", "True Wireless Earbuds",
         "On-Ear Headphones"),
        ("Sony", "Bose", "Sennheiser", "JBL", "Anker"),
        ("Black", "White", "Silver", "Blue", "Rose"), ("Bluetooth 5.3", "USB-C", "Wired"),
        ("Noise Cancelling", "Long Battery", "Foldable", "Water Resistant", "Hi-Res"), 120.0, 0.7,
    ),
    Category(
        "bluetooth speaker", "audio", ("speaker", "portable speaker", "wireless speaker"),
        ("Bluetooth Speaker", "Portable Speaker", "Smart Speaker", "Party Speaker"),
        ("JBL", "Bose", "Sony", "Anker", "Ultimate Ears"),
        ("Black", "Blue", "Red", "Teal", "White"), ("Fabric", "Rubber", "Aluminum"),
        ("Waterproof", "Long Battery", "Bass Boost", "Voice Assistant", "Rugged"), 90.0, 0.6,
    ),
    Category(
        "coffee maker", "kitchen", ("coffee machine", "espresso machine", "coffee brewer"),
        ("Coffee Maker", "Espresso Machine", "Drip Coffee Maker", "Single Serve Brewer"),
        ("Breville", "DeLonghi", "Cuisinart", "Keurig", "Mr. Coffee"),
        ("Black", "Stainless", "Red", "White"), ("Stainless Steel", "Glass Carafe", "Plastic"),
        ("Programmable", "12-Cup", "Milk Frother", "Auto Shut-Off", "Grinder"), 110.0, 0.65,
    ),
    Category(
        "blender", "kitchen", ("smoothie maker", "mixer", "juicer"),
        ("Blender", "Personal Blender", "Countertop Blender", "Immersion Blender"),
        ("Vitamix", "Ninja", "NutriBullet", "Oster", "KitchenAid"),
        ("Black", "Red", "Silver", "White", "Green"), ("Glass Jar", "BPA-Free", "Stainless Steel"),
        ("1000W", "Variable Speed", "Pulse", "Self-Cleaning", "To-Go Cups"), 80.0, 0.6,
    ),
    Category(
        "running shoes", "sports", ("sneakers", "trainers", "jogging shoes"),
        ("Running Shoes", "Trail Running Shoes", "Road Running Shoes", "Racing Flats"),
        ("Nike", "Adidas", "Asics", "Brooks", "Hoka"),
        ("Black", "White", "Blue", "Red", "Neon"), ("Mesh", "Knit", "Synthetic"),
        ("Cushioned", "Lightweight", "Waterproof", "Wide Fit", "Stability"), 110.0, 0.35,
    ),
    Category(
        "yoga mat", "sports", ("exercise mat", "workout mat", "fitness mat"),
        ("Yoga Mat", "Travel Yoga Mat", "Thick Exercise Mat", "Cork Yoga Mat"),
        ("Manduka", "Gaiam", "Lululemon", "Liforme", "Adidas"),
        ("Purple", "Black", "Blue", "Green", "Pink"), ("TPE", "Natural Rubber", "Cork"),
        ("Non-Slip", "6mm", "Extra Thick", "Alignment Lines", "Carry Strap"), 45.0, 0.55,
    ),
    Category(
        "backpack", "travel", ("rucksack", "daypack", "bookbag"),
        ("Backpack", "Hiking Backpack", "Laptop Backpack", "Travel Backpack"),
        ("Osprey", "The North Face", "Herschel", "JanSport", "Deuter"),
        ("Black", "Navy", "Green", "Gray", "Red"), ("Nylon", "Canvas", "Polyester"),
        ("Water Resistant", "30L", "Laptop Sleeve", "Anti-Theft", "Padded Straps"), 75.0, 0.5,
    ),
    Category(
        "desk lamp", "home", ("table lamp", "reading light", "lamp"),
        ("Desk Lamp", "LED Desk Lamp", "Architect Lamp", "Clamp Lamp"),
        ("Philips", "Ikea", "BenQ", "TaoTronics", "Lepower"),
        ("Black", "White", "Silver", "Gold"), ("Metal", "Aluminum", "Wood"),
        ("Dimmable", "USB Charging", "Touch Control", "Eye-Care", "Adjustable Arm"), 40.0, 0.6,
    ),
    Category(
        "vacuum cleaner", "home", ("vacuum", "hoover", "stick vacuum"),
        ("Vacuum Cleaner", "Cordless Stick Vacuum", "Robot Vacuum", "Upright Vacuum"),
        ("Dyson", "Shark", "Bissell", "Roborock", "Miele"),
        ("Purple", "Gray", "Red", "Black", "White"), ("HEPA", "Bagless", "Bagged"),
        ("Cordless", "Pet Hair", "Self-Emptying", "Lightweight", "Wi-Fi"), 250.0, 0.6,
    ),
)
# fmt: on


def _vocabulary(*fields: str) -> tuple[str, ...]:
    """Every distinct word of the given catalogue fields, in first-seen order."""
    words = [word for spec in CATALOG for field in fields for word in getattr(spec, field)]
    return tuple(dict.fromkeys(words))


BRANDS = _vocabulary("brands")


COLORS = _vocabulary("colors")


MODIFIERS = _vocabulary("materials", "features")


GROUP_OF = np.array([sorted({c.group for c in CATALOG}).index(c.group) for c in CATALOG])


TITLE_TEMPLATES = (
    "{brand}{subtype} {feature}, {color}, {material}",
    "{brand}{material} {subtype}, {color}, {feature}",
    "{brand}{feature} {subtype} - {material}, {color}",
)
