"""Writes the labelled passages of the 220-member evaluation (run once; the output is committed).

    python -m tests.scripts.make_member_passages

Two sets from two disjoint groups of sentence frames and traps, with two seeds:
passages.jsonl (tuning: the derivation's thresholds were chosen looking at it) and
heldout.jsonl (never looked at while tuning). Labels say which members a reader sees;
they come from the frames and from PRESS_FORMS (how the press shortens a name, written
by hand), never from veille's derivation.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from pipeline.settings.config import slugify
from pipeline.settings.directory import without_legal_suffix

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "members"
DIRECTORY = HERE / "directory.csv"

# How the press shortens some names (what a journalist writes on second mention).
PRESS_FORMS = {
    "Mablink Bioscience": ["Mablink"],
    "Kelia Therapeutics": ["Kelia"],
    "Ixaka Pharma": ["Ixaka"],
    "Kerlis SA": ["Kerlis"],
    "Biolumis SARL": ["Biolumis"],
    "Ormeo Bio SAS": ["Ormeo"],
    "Vectalys Nantes": ["Vectalys"],
    "Immunoqure Santé": ["Immunoqure"],
    "Curium Atlantique": ["Curium"],
    "Hemarina Ouest": ["Hemarina"],
    "Polymaris Biotechnology": ["Polymaris"],
    "Lucine Therapeutics": ["Lucine"],
    "Vivalto Santé": ["Vivalto"],
    "Algaia Santé": ["Algaia"],
    "Naogen Pharma": ["Naogen"],
    "GoLiver Therapeutics": ["GoLiver"],
    "OSE Immunotherapeutics": ["OSE"],
    "Valneva SE": ["Valneva"],
    "Step Pharma SAS": ["Step Pharma"],
    "Atlantic Diagnostics SAS": ["Atlantic Diagnostics"],
    "Pulse Medical SAS": ["Pulse Medical"],
    "Cardiorenal Diagnostics": ["Cardiorenal"],
    "Astatine Pharma": ["Astatine Pharma"],
    "Genoway Ouest": ["Genoway"],
    "Fermentalg Ouest": ["Fermentalg"],
    "Oncodesign Ouest": ["Oncodesign"],
    "Synthelis Ouest": ["Synthelis"],
    "Tissium Nantes": ["Tissium"],
    "Theranexus Ouest": ["Theranexus"],
    "Lanvaux Pharma": ["Lanvaux"],
}

TUNING_FRAMES = [
    ("fr", "{a} lève 12 millions d'euros pour financer son essai clinique de phase 2."),
    ("fr", "La biotech nantaise {a} annonce le recrutement de son premier patient."),
    ("fr", "Accord de licence entre {a} et {b} pour un anticorps en oncologie."),
    ("fr", "{a} inaugure un nouveau laboratoire à Saint-Herblain."),
    ("fr", "Le conseil d'administration de {a} nomme un nouveau directeur général."),
    ("fr", "Selon son PDG, {a} vise une introduction en bourse d'ici deux ans."),
    ("fr", "{a} et {b} s'allient pour développer un test de diagnostic rapide."),
    ("fr", "Atlanpole Biotherapies accueille {a} parmi ses membres."),
    ("en", "{a} raises €8 million in a Series A round led by regional investors."),
    ("en", "{a} announced positive topline results from its phase 1 trial."),
    ("en", "The partnership between {a} and {b} covers manufacturing in France."),
    ("en", "{a} appointed a chief medical officer to lead its clinical programme."),
    ("en", "French biotech {a} signed a licensing deal with a US pharma company."),
    ("en", "Shares of {a} rose after the company reported its first revenue."),
]
HELDOUT_FRAMES = [
    ("fr", "Nouvelle étape pour {a}, qui obtient le marquage CE de son dispositif."),
    ("fr", "À Angers, {a} double la surface de son site de production."),
    ("fr", "{a} remporte le trophée de l'innovation santé du Grand Ouest."),
    ("fr", "Les équipes de {a} et de {b} publient leurs résultats dans Nature."),
    ("fr", "Le fonds régional entre au capital de {a} aux côtés de Bpifrance."),
    ("fr", "Pour {a}, l'année 2026 sera celle de l'industrialisation."),
    ("en", "{a} expands its footprint with a second site near Nantes."),
    ("en", "Investors back {a} as it moves its lead candidate into the clinic."),
    ("en", "{a} and {b} will co-develop a companion diagnostic."),
    ("en", "Regulators cleared the trial application filed by {a} last month."),
    ("en", "The chief executive of {a} said the cash runway now reaches 2028."),
]
HEADLINE = "{A} : {rest}"
HEADLINE_RESTS = [
    "LÈVE DES FONDS",
    "NOUVEL ESSAI CLINIQUE",
    "RAISES SERIES B",
    "SIGNS LICENSE DEAL",
]

# Hand-written traps: the words of members' names in other senses (labels by hand).
TUNING_TRAPS: list[tuple[str, list[str]]] = [
    ("The next step: pharma companies must rethink their supply chains.", []),
    ("Each step pharma teams take is audited by the agency.", []),
    ("Un enjeu vital pour l'Ouest : la santé de proximité.", []),
    ("Le ministre a jugé la réforme « vitale » pour l'ouest du pays.", []),
    ("An atlantic bone screen of the cod stock found no disease.", []),
    ("Il ose tout : le festival des cultures urbaines revient à Nantes.", []),
    ("Fast Track designation was granted by the FDA to the candidate.", []),
    ("Biomarkers are measured in blood at each visit of the study.", []),
    ("A nova cell line was described in the paper's methods.", []),
    ("Clean cells are required before each passage in the protocol.", []),
    ("Open health data platforms are spreading across Europe.", []),
    ("The bright cells on the slide are the labelled neurons.", []),
    ("Good cells make good science, says the laboratory manager.", []),
    ("The arc of the trial ran from 2021 to 2025.", []),
    ("La via ferrata de Saint-Nazaire a ouvert ses portes.", []),
    ("The era of gene therapy has begun, the speaker said.", []),
    ("Le tau de la protéine est mesuré dans le liquide céphalorachidien.", []),
    ("The iris of the patient was imaged with a new camera.", []),
    ("Le quartz du capteur est fabriqué en Suisse.", []),
    ("A shape of things to come: therapeutics are changing.", []),
    ("Signal genomics data must be filtered before analysis.", []),
    ("The trace diagnostics of the engine found no fault.", []),
    ("La balance commerciale de la région s'améliore.", []),
    ("Un lighthouse project, comme disent les Anglo-Saxons.", []),
    ("Deep life under the ocean floor is studied by Ifremer.", []),
    ("Simple bio products are on the shelves of every supermarket.", []),
    ("La Loire Valley attire les touristes chaque été.", []),
    ("Blue Ocean Strategy is a classic of business schools.", []),
    ("Red genomics was a joke name in the lab's Slack channel.", []),
    ("Step Pharma doses its first patient in the STEP-1 trial.", ["step-pharma"]),
    ("STEP PHARMA LÈVE 30 MILLIONS", ["step-pharma"]),
    ("Vital Ouest ouvre un centre à Nantes.", ["vital-ouest"]),
    ("Atlantic Bone Screen signe un contrat avec un laboratoire suisse.", ["atlantic-bone-screen"]),
    ("La biotech OSE publie ses résultats d'essai.", ["ose-immunotherapeutics"]),
    (
        "Nova Cell Therapeutics rachète une usine ; Nova Cell recrute.",
        ["nova-cell-therapeutics", "nova-cell"],
    ),
    ("Mablink, la biotech lyonnaise, lève des fonds.", ["mablink-bioscience"]),
    (
        "ARC Therapeutics nomme un CEO ; ARC vise la clinique en 2027.",
        ["arc-therapeutics", "arc-therapeutics"],
    ),
    ("Cellis Bio et Cellis signent un accord.", ["cellis-bio", "cellis"]),
    ("Kalys Bio, filiale de Kalys, recrute.", ["kalys-bio", "kalys"]),
    (
        "Le CHU Angers Innovation soutient Angers Biomarqueurs.",
        ["chu-angers-innovation", "angers-biomarqueurs"],
    ),
    ("Radiolys Medical n'est pas Radiolys, précise la société.", ["radiolys-medical", "radiolys"]),
]
HELDOUT_TRAPS: list[tuple[str, list[str]]] = [
    ("Une étape vitale vers l'ouest de la Bretagne.", []),
    ("The first step, pharma analysts say, is to cut costs.", []),
    ("Le festival OSE ! revient à Rennes avec quarante artistes.", []),
    ("Elle ose une nouvelle voie pour la biotech française.", []),
    ("Atlantic bone screens are used by fisheries scientists.", []),
    ("Fast track procedures shorten the review of the dossier.", []),
    ("The focus cell of the experiment was dyed green.", []),
    ("Compass diagnostics in the car were updated overnight.", []),
    ("A mosaic of startups now fills the technopole.", []),
    ("Good cells, bad cells: the immune system decides.", []),
    ("Harmony biotech conference? No, a choir festival in Nantes.", []),
    ("The anchor of the show interviewed a biotech founder.", []),
    ("La vision de l'institut reste inchangée.", []),
    ("Pulse medical devices are regulated under the MDR.", []),
    ("Nova, the supernova survey, found new cells of star formation.", []),
    ("Le centre Val de Loire investit dans la santé.", []),
    ("Vital Ouest signe avec la région ; Vital Ouest recrute.", ["vital-ouest", "vital-ouest"]),
    (
        "Après Step Pharma, c'est au tour de Kelia Therapeutics de lever des fonds.",
        ["step-pharma", "kelia-therapeutics"],
    ),
    (
        "OSE et Valneva en hausse à la Bourse de Paris, la biotech nantaise en tête.",
        ["ose-immunotherapeutics", "valneva"],
    ),
    (
        "Nova Cell a cédé une licence à Nova Cell Therapeutics.",
        ["nova-cell", "nova-cell-therapeutics"],
    ),
    ("ATLANTIC BONE SCREEN : UN CONTRAT RECORD", ["atlantic-bone-screen"]),
    (
        "Les fondateurs de Mablink Bioscience ont quitté Mablink en 2025.",
        ["mablink-bioscience", "mablink-bioscience"],
    ),
    (
        "Oncolytix Diagnostics, spin-off d'Oncolytix, recrute.",
        ["oncolytix-diagnostics", "oncolytix"],
    ),
]


def names() -> list[str]:
    with DIRECTORY.open(encoding="utf-8", newline="") as handle:
        return [row["name"] for row in csv.DictReader(handle)]


def member_id(name: str) -> str:
    """The id `veille members import` gives; the 16 members of sources.yaml keep theirs."""
    return slugify(without_legal_suffix(name))


def press_form(name: str, rng: random.Random) -> str:
    forms = [without_legal_suffix(name), *PRESS_FORMS.get(name, [])]
    return rng.choice(forms)


def build(
    frames: list[tuple[str, str]], traps: list[tuple[str, list[str]]], seed: int, prefix: str
) -> list[dict[str, object]]:
    rng = random.Random(seed)
    everyone = names()
    passages: list[dict[str, object]] = []
    # every member at least once, in a frame
    order = everyone[:]
    rng.shuffle(order)
    for index, name in enumerate(order):
        lang, frame = rng.choice(frames)
        other = rng.choice([n for n in everyone if n != name])
        mentions = [member_id(name)]
        if "Atlanpole Biotherapies" in frame:
            mentions.insert(0, "atlanpole-biotherapies")
        text = frame.replace("{a}", press_form(name, rng))
        if "{b}" in frame:
            text = text.replace("{b}", press_form(other, rng))
            mentions.append(member_id(other))
        passages.append(
            {
                "id": f"{prefix}-{index:03d}",
                "lang": lang,
                "text": text,
                "mentions": [{"member_id": m} for m in mentions],
            }
        )
    # headlines in capitals
    for index, name in enumerate(rng.sample(everyone, 30)):
        text = HEADLINE.format(A=press_form(name, rng).upper(), rest=rng.choice(HEADLINE_RESTS))
        passages.append(
            {
                "id": f"{prefix}-caps-{index:02d}",
                "lang": "fr",
                "text": text,
                "mentions": [{"member_id": member_id(name)}],
            }
        )
    for index, (text, labelled) in enumerate(traps):
        passages.append(
            {
                "id": f"{prefix}-trap-{index:02d}",
                "lang": "en",
                "text": text,
                "mentions": [{"member_id": m} for m in labelled],
            }
        )
    return passages


def main() -> None:
    for file, frames, traps, seed, prefix in (
        ("passages.jsonl", TUNING_FRAMES, TUNING_TRAPS, 13, "t"),
        ("heldout.jsonl", HELDOUT_FRAMES, HELDOUT_TRAPS, 1313, "h"),
    ):
        rows = build(frames, traps, seed, prefix)
        with (HERE / file).open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{file}: {len(rows)} passages")


if __name__ == "__main__":
    main()
