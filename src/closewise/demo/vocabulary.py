"""The words the demo org is made of: names, companies, industries, countries, next steps, subjects."""

from __future__ import annotations

from typing import Final

FIRST_NAMES: Final = (
    "Ada", "Alex", "Amara", "Anna", "Arjun", "Ben", "Bianca", "Carla", "Chen", "Chloe", "Dana", "Daniel",
    "David", "Diego", "Elena", "Emil", "Emma", "Erik", "Fatima", "Felix", "Grace", "Hana", "Hugo", "Ines",
    "Isaac", "Ivy", "Jack", "Jana", "Javier", "Jonas", "Julia", "Kai", "Kenji", "Lara", "Leo", "Liam",
    "Lina", "Lucas", "Maya", "Marco", "Maria", "Mateo", "Mia", "Nadia", "Nina", "Noah", "Nora", "Olga",
    "Omar", "Oscar", "Paula", "Priya", "Rafael", "Rosa", "Ruth", "Sam", "Sara", "Sofia", "Tara", "Theo",
    "Tomas", "Uma", "Vera", "Victor", "Yara", "Yusuf", "Zoe", "Aiden", "Beatriz", "Cyrus", "Dmitri",
    "Eva", "Farah", "Gustav", "Helen", "Ingrid", "Jamal", "Kira", "Lorenzo", "Mei", "Nikolai", "Olivia",
    "Pedro", "Quinn", "Rania", "Stefan", "Tobias", "Ulla", "Valentina", "Wei", "Ximena", "Yosef", "Zara",
)  # fmt: skip

LAST_NAMES: Final = (
    "Abbott", "Adler", "Alvarez", "Bauer", "Becker", "Bell", "Brooks", "Carter", "Castro", "Chen", "Costa",
    "Cruz", "Dalton", "Diaz", "Dubois", "Ellis", "Evans", "Fischer", "Fleming", "Garcia", "Gomez", "Grant",
    "Hansen", "Hayes", "Hoffman", "Holm", "Ito", "Jensen", "Kaur", "Keller", "Khan", "Kim", "Klein",
    "Kowalski", "Larsen", "Lee", "Lopez", "Martin", "Meyer", "Morales", "Moreau", "Murphy", "Nakamura",
    "Nguyen", "Novak", "Okafor", "Olsen", "Ortiz", "Park", "Patel", "Perez", "Petrov", "Quinn", "Ramos",
    "Reyes", "Rossi", "Russo", "Sato", "Schmidt", "Schulz", "Silva", "Singh", "Sousa", "Stone", "Suzuki",
    "Tanaka", "Torres", "Vargas", "Vogel", "Wagner", "Walsh", "Weber", "Wolf", "Wong", "Young", "Zimmer",
    "Baker", "Coleman", "Doyle", "Engel", "Ferrari", "Gallo", "Hughes", "Ibrahim", "Jovanovic", "Lindqvist",
)  # fmt: skip

COMPANY_PREFIXES: Final = (
    "Acme", "Apex", "Arc", "Atlas", "Aurora", "Beacon", "Blue", "Bright", "Cedar", "Clear", "Cobalt", "Crest",
    "Delta", "Echo", "Ember", "Evergreen", "Falcon", "Fjord", "Granite", "Harbor", "Helix", "Horizon",
    "Iron", "Juniper", "Keystone", "Lumen", "Maple", "Meridian", "Nimbus", "North", "Nova", "Oak", "Orbit",
    "Pioneer", "Prism", "Quartz", "Redwood", "Sierra", "Silver", "Summit", "Terra", "Vertex", "Vista",
)  # fmt: skip

COMPANY_CORES: Final = (
    "Analytics", "Bio", "Cloud", "Data", "Dynamics", "Energy", "Foods", "Freight", "Health", "Labs",
    "Logistics", "Machines", "Media", "Metals", "Motors", "Networks", "Pharma", "Power", "Retail",
    "Robotics", "Software", "Solutions", "Systems", "Textiles", "Tools", "Travel", "Ventures", "Works",
)  # fmt: skip

COMPANY_SUFFIXES: Final = ("Inc", "Ltd", "GmbH", "Group", "Corp", "Co", "SA", "BV", "LLC", "plc")

CITIES: Final = (
    "Austin", "Berlin", "Boston", "Chicago", "Denver", "Dublin", "Hamburg", "Leeds", "Lyon", "Madrid",
    "Milan", "Munich", "Oslo", "Paris", "Porto", "Seattle", "Sydney", "Toronto", "Utrecht", "Zurich",
)  # fmt: skip

INDUSTRIES: Final = (
    "Software", "Manufacturing", "Financial Services", "Healthcare", "Retail", "Logistics",
    "Telecommunications", "Energy", "Education", "Media", "Professional Services", "Public Sector",
)  # fmt: skip

# Country, share of accounts, record currency, time zone.
COUNTRIES: Final = (
    ("United States", 0.52, "USD", "America/New_York"),
    ("Canada", 0.06, "USD", "America/Toronto"),
    ("United Kingdom", 0.13, "GBP", "Europe/London"),
    ("Germany", 0.10, "EUR", "Europe/Berlin"),
    ("France", 0.06, "EUR", "Europe/Paris"),
    ("Netherlands", 0.04, "EUR", "Europe/Amsterdam"),
    ("Spain", 0.03, "EUR", "Europe/Madrid"),
    ("Australia", 0.06, "USD", "Australia/Sydney"),
)

SEGMENTS: Final = ("smb", "mid_market", "enterprise")
SEGMENT_LABELS: Final = ("SMB", "Mid-Market", "Enterprise")
REGIONS: Final = ("East", "West", "Central", "North", "South", "EMEA", "APAC")

# Buying roles: the first three contacts of every account hold these, in this order.
KEY_ROLES: Final = ("economic_buyer", "champion", "decision_maker")
OTHER_ROLES: Final = ("user", "technical_evaluator", "influencer", "procurement")
ROLE_TITLES: Final = {
    "economic_buyer": "Chief Financial Officer",
    "champion": "Head of Operations",
    "decision_maker": "VP Engineering",
    "user": "Team Lead",
    "technical_evaluator": "Solutions Architect",
    "influencer": "Senior Analyst",
    "procurement": "Procurement Manager",
}

COMPETITORS: Final = ("Clari", "Gong", "Salesforce Einstein", "Aviso", "BoostUp", "InsightSquared", "Spreadsheet")
PRODUCTS: Final = ("Platform", "Forecasting", "Coaching", "Analytics Suite", "Enterprise Plan", "Add-on Seats")
OPPORTUNITY_TYPES: Final = ("new_business", "expansion", "renewal")

# Lead sources that come through marketing, and the sources of deals reps found themselves.
LEAD_SOURCES: Final = ("web", "paid_search", "webinar", "event", "referral", "partner", "content")
OUTBOUND_SOURCES: Final = ("outbound", "partner", "existing_customer")

# Next steps a rep writes in each stage (index = stage order - 1).
NEXT_STEPS: Final = (
    ("Book the discovery call", "Send intro deck", "Follow up on LinkedIn"),
    ("Confirm budget owner", "Qualification call on Thursday", "Share case study"),
    ("Map the buying group", "Workshop with the ops team", "Quantify the business case"),
    ("Tailored demo for the evaluation team", "Security questionnaire", "Meet the CFO"),
    ("Send the proposal", "Review pricing with the champion", "Agree the decision timeline"),
    ("Redlines back from legal", "Procurement call", "Signature expected this week"),
)  # fmt: skip

ACTIVITY_SUBJECTS: Final = {
    "call": ("Follow-up call", "Check-in call", "Pricing call", "Reference call"),
    "email": ("Follow-up email", "Sent recap", "Sent case study", "Sent pricing"),
    "meeting": ("Working session", "Demo", "Stakeholder meeting", "Executive briefing"),
    "task": ("Prepare proposal", "Update mutual plan", "Send contract", "Internal deal review"),
}
DISCOVERY_SUBJECT: Final = "Discovery meeting"
LEAD_SUBJECTS: Final = {"call": "First call", "email": "First email"}

EVIDENCE: Final = {
    "metrics": "Cut forecast prep from 2 days to 2 hours",
    "economic_buyer": "CFO signs above the budget line",
    "decision_criteria": "Accuracy, CRM fit, time to value",
    "decision_process": "Pilot, security review, CFO sign-off",
    "identify_pain": "Missed the last two quarterly commits",
    "champion": "Head of Operations is driving the evaluation",
    "competition": "Comparing against the current spreadsheet",
    "budget": "Budget approved for this fiscal year",
    "authority": "Talking to the VP who owns the budget",
    "need": "Forecast misses are costing credibility with the board",
    "timeline": "Wants it live before the next planning cycle",
}
