"""The red-flag categories the screen reports, each with its advice group and the public guidance it follows.

A category is what the classifier predicts for an emergency message and what a rule names when it fires. The
advice group decides the emergency advice shown first (:mod:`.advice`). Sources are the public triage lists the
category's definition and the training messages follow: NHS "When to call 999" and condition pages, NICE clinical
guidelines, WHO danger signs in pregnancy, after birth and in young infants (IMCI), AHA/ASA heart-attack and BE FAST
stroke signs, and the 988 Suicide & Crisis Lifeline risk signs.
"""

from __future__ import annotations

from dataclasses import dataclass

MEDICAL, CRISIS, POISONING, VIOLENCE, HARM_TO_BABY = (
    "medical",
    "crisis",
    "poisoning",
    "violence",
    "harm_to_baby",
)


@dataclass(frozen=True)
class Category:
    """One emergency category: ``advice`` is an advice group; ``signs`` what counts; ``source`` the guidance."""

    id: str
    title: str
    advice: str
    signs: str
    source: str


_ROWS = [
    ("heart_attack", "Possible heart attack", MEDICAL,
     "chest pain or pressure, or pain spreading to arm, jaw, neck or back with sweating, nausea or breathlessness",
     "AHA, Warning Signs of a Heart Attack; NHS, Heart attack"),
    ("stroke", "Possible stroke", MEDICAL,
     "BE FAST: balance, eyes, face drooping, arm weakness, speech trouble, sudden worst headache",
     "AHA/ASA, BE FAST; NHS, Stroke"),
    ("breathing_difficulty", "Severe breathing difficulty", MEDICAL,
     "can't breathe or speak in sentences, blue or grey lips, gasping",
     "NHS, When to call 999"),
    ("asthma_attack", "Severe asthma attack", MEDICAL,
     "reliever not helping, too breathless to talk, eat or sleep", "NHS, Asthma attack"),
    ("choking", "Choking", MEDICAL, "can't breathe, cough or speak after something went down the wrong way",
     "Resuscitation Council UK / NHS, Choking"),
    ("anaphylaxis", "Possible anaphylaxis", MEDICAL,
     "swelling of throat, tongue or lips with breathing trouble or faintness after a food, sting or drug",
     "NHS, Anaphylaxis; World Allergy Organization anaphylaxis guidance"),
    ("severe_bleeding", "Severe bleeding", MEDICAL, "heavy bleeding that does not stop with pressure",
     "NHS, When to call 999"),
    ("gi_bleeding", "Bleeding from the gut", MEDICAL, "vomiting blood or coffee grounds, black tarry stools",
     "NHS, Vomiting blood; NICE CKS"),
    ("unconscious", "Unconscious or unresponsive", MEDICAL, "can't be woken, collapsed, not breathing normally",
     "NHS, When to call 999"),
    ("seizure", "Seizure", MEDICAL, "a fit over 5 minutes, repeated fits, a first fit, not waking after one",
     "NHS, Epilepsy: what to do if someone has a seizure"),
    ("head_injury", "Serious head injury", MEDICAL,
     "after a head injury: repeated vomiting, drowsiness, confusion, a fit, clear fluid from nose or ear",
     "NICE NG232, Head injury"),
    ("sepsis", "Possible sepsis", MEDICAL,
     "infection with confusion, mottled or blue skin, no urine, very fast breathing",
     "NHS, Sepsis; NICE NG51"),
    ("meningitis", "Possible meningitis", MEDICAL, "fever with a rash that does not fade under a glass, stiff neck",
     "NHS, Meningitis"),
    ("severe_abdominal_pain", "Sudden severe abdominal pain", MEDICAL,
     "sudden severe or rigid belly pain, pain with fainting, sudden testicle pain",
     "NHS, When to call 999; NHS, Stomach ache"),
    ("diabetic_ketoacidosis", "Possible diabetic ketoacidosis", MEDICAL,
     "diabetes with vomiting, fast deep breathing, fruity breath, high ketones, a meter reading HI",
     "NHS, Diabetic ketoacidosis; ADA Standards of Care"),
    ("severe_hypoglycaemia", "Severe low blood sugar", MEDICAL,
     "diabetes with confusion, drowsiness, a fit or unconsciousness, or a low that does not rise",
     "NHS, Low blood sugar (hypoglycaemia); ADA Standards of Care"),
    ("infant_danger_signs", "Danger signs in a baby or young child", MEDICAL,
     "under 3 months with 38 C or more, not feeding, floppy, hard to wake, fast or grunting breathing, fits",
     "WHO IMCI general danger signs; NICE NG143, Fever in under 5s"),
    ("pregnancy_bleeding", "Bleeding in pregnancy", MEDICAL, "vaginal bleeding in pregnancy",
     "WHO recommendations on antenatal care (2016), danger signs; NHS, Vaginal bleeding in pregnancy"),
    ("pre_eclampsia", "Possible pre-eclampsia", MEDICAL,
     "pregnant or just delivered with severe headache, vision changes, sudden swelling, upper belly pain",
     "WHO danger signs in pregnancy; NHS, Pre-eclampsia"),
    ("reduced_fetal_movement", "Baby moving less", MEDICAL, "the baby moving less or not at all later in pregnancy",
     "NHS / RCOG, Your baby's movements"),
    ("preterm_labour_or_waters", "Early labour or waters breaking", MEDICAL,
     "waters breaking before 37 weeks, green or smelly fluid, early regular contractions, cord seen",
     "WHO antenatal danger signs; NHS, Premature labour"),
    ("ectopic_pregnancy", "Possible ectopic pregnancy", MEDICAL,
     "early pregnancy with one-sided pain, shoulder-tip pain, fainting or bleeding", "NHS, Ectopic pregnancy"),
    ("postpartum_haemorrhage", "Heavy bleeding after birth", MEDICAL,
     "soaking a pad an hour, large clots, dizziness or racing heart after birth",
     "WHO recommendations on maternal and newborn care for a positive postnatal experience (2022)"),
    ("blood_clot", "Possible blood clot", MEDICAL,
     "a swollen painful calf with sudden breathlessness or chest pain, coughing blood",
     "NHS, Pulmonary embolism; NHS, DVT; RCOG Green-top 37a"),
    ("harm_to_baby", "Risk of harm to a baby", HARM_TO_BABY,
     "a parent thinking of harming the baby, hearing voices, postpartum psychosis, shaking a baby",
     "NHS, Postpartum psychosis; WHO postnatal guideline (2022), maternal mental health"),
    ("suicide_risk", "Suicide risk", CRISIS, "wanting to die, a plan or means, goodbyes, indirect talk of not being here",
     "988 Suicide & Crisis Lifeline, risk and warning signs; NHS, Help for suicidal thoughts"),
    ("self_harm", "Self-harm", CRISIS, "hurting oneself now, a self-harm wound, an urge to do it now",
     "NHS, Self-harm; 988 Suicide & Crisis Lifeline"),
    ("overdose", "Overdose", POISONING, "too many tablets taken, or asking how many would kill, drug and alcohol mix",
     "NHS, Overdose; America's Poison Centers"),
    ("poisoning", "Poisoning", POISONING,
     "swallowed a chemical, battery or someone else's pills; carbon monoxide; fumes",
     "NHS, Poisoning; America's Poison Centers"),
    ("violence_danger", "In danger from another person", VIOLENCE,
     "partner or family violence, threats to kill, strangulation, a recent assault, a child being hurt",
     "WHO, Responding to intimate partner violence and sexual violence against women (2013); NICE PH50"),
    ("severe_burn", "Serious burn", MEDICAL, "large or deep burns, burns to the face or airway, electrical or "
     "chemical burns", "NHS, Burns and scalds"),
    ("heatstroke", "Possible heatstroke", MEDICAL, "hot, confused, not sweating or collapsed after heat",
     "NHS, Heat exhaustion and heatstroke"),
]  # fmt: skip

#: category id -> Category, in the order the advice is tried (first match wins for a single category).
CATEGORIES: dict[str, Category] = {row[0]: Category(*row) for row in _ROWS}
