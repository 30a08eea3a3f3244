"""The triage categories the screen reports, each with its level, advice group and the public guidance it follows.

Every category has a **level**: ``emergency`` (call the emergency number, go to A&E now, or call a crisis line now)
or ``urgent`` (be seen today: NHS 111, an urgent care centre, a same-day GP, midwife, dentist or eye casualty); a
message with no category is ``routine``. A category is what the classifier predicts and what a rule names when it
fires. The advice group decides the advice shown first (:mod:`.advice`). Sources are the public triage guidance the
category's definition and the training messages follow: NHS "When to call 999", "Go to A&E now" and condition pages,
NHS 111 and urgent-care guidance, NICE clinical guidelines (NG143 fever in under 5s: red and amber features), WHO
danger signs in pregnancy, after birth and in young infants (IMCI), AHA/ASA heart-attack and BE FAST stroke signs,
and the 988 Suicide & Crisis Lifeline risk signs. The table is the one in the team's triage spec (issue 24).
"""

from __future__ import annotations

from dataclasses import dataclass

EMERGENCY, URGENT, ROUTINE = "emergency", "urgent", "routine"
#: levels, most urgent first; ``LEVELS.index`` orders them (lower is more urgent).
LEVELS = (EMERGENCY, URGENT, ROUTINE)

MEDICAL, CRISIS, POISONING, VIOLENCE, HARM_TO_BABY, SAME_DAY = (
    "medical",
    "crisis",
    "poisoning",
    "violence",
    "harm_to_baby",
    "same_day",
)

GP_111 = "Call NHS 111 (UK) or your doctor's same-day line, or go to an urgent care centre"


@dataclass(frozen=True)
class Category:
    """One triage category.

    ``level``: emergency or urgent. ``advice``: an advice group (:mod:`.advice`; urgent categories are all
    ``same_day``). ``signs``: what counts. ``source``: the guidance. ``reason`` (urgent only): the words after "This
    should be checked today:". ``where`` (urgent only): who to contact today, as a sentence without its full stop.
    """

    id: str
    title: str
    level: str
    advice: str
    signs: str
    source: str
    reason: str = ""
    where: str = GP_111


_EMERGENCY_ROWS = [
    ("heart_attack", "Possible heart attack", MEDICAL,
     "chest pain or pressure, or pain spreading to arm, jaw, neck or back with sweating, nausea or breathlessness",
     "AHA, Warning Signs of a Heart Attack; NHS, Heart attack"),
    ("stroke", "Possible stroke", MEDICAL,
     "BE FAST: balance, eyes, face drooping, arm weakness, speech trouble",
     "AHA/ASA, BE FAST; NHS, Stroke"),
    ("thunderclap_headache", "Sudden severe headache", MEDICAL,
     "a sudden, severe headache that peaks within a minute or so (\"worst ever\", \"like being hit on the head\")",
     "NHS, Headaches: call 999; NICE CKS, Headache - assessment (subarachnoid haemorrhage)"),
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
     "infection with confusion, mottled or blue skin, no urine, very fast breathing, \"feel like I might die\"",
     "NHS, Sepsis; NICE NG51"),
    ("meningitis", "Possible meningitis", MEDICAL,
     "fever with a rash that does not fade under a glass, stiff neck, dislike of bright light", "NHS, Meningitis"),
    ("severe_abdominal_pain", "Sudden severe abdominal pain", MEDICAL,
     "sudden severe or rigid belly pain, pain with fainting", "NHS, When to call 999; NHS, Stomach ache"),
    ("testicular_torsion", "Possible testicular torsion", MEDICAL,
     "sudden severe pain in one testicle, often with swelling, nausea or belly pain (boys and young men especially)",
     "NHS, Testicle pain: go to A&E now"),
    ("cauda_equina", "Possible cauda equina syndrome", MEDICAL,
     "back pain with numbness around the bottom or genitals, new trouble peeing or controlling bladder or bowel, "
     "weakness in both legs", "NHS, Cauda equina syndrome: go to A&E now"),
    ("diabetic_ketoacidosis", "Possible diabetic ketoacidosis", MEDICAL,
     "diabetes with vomiting, fast deep breathing, fruity breath, high ketones, a meter reading HI",
     "NHS, Diabetic ketoacidosis; ADA Standards of Care"),
    ("severe_hypoglycaemia", "Severe low blood sugar", MEDICAL,
     "diabetes with confusion, drowsiness, a fit or unconsciousness, or a low that does not rise",
     "NHS, Low blood sugar (hypoglycaemia); ADA Standards of Care"),
    ("infant_danger_signs", "Danger signs in a baby or young child", MEDICAL,
     "a baby or young child: not feeding, floppy, hard to wake, fast or grunting breathing, fits, blue",
     "WHO IMCI general danger signs; NICE NG143, Fever in under 5s (red features)"),
    ("febrile_infant", "Fever in a baby under 3 months", MEDICAL,
     "a baby under 3 months with a temperature of 38 C (100.4 F) or more, however well the baby seems",
     "NICE NG143: any fever of 38 C or more under 3 months is high risk"),
    ("pregnancy_bleeding", "Bleeding in pregnancy", MEDICAL,
     "heavy vaginal bleeding in pregnancy, or bleeding with pain",
     "WHO recommendations on antenatal care (2016), danger signs; NHS, Vaginal bleeding in pregnancy"),
    ("pre_eclampsia", "Possible pre-eclampsia", MEDICAL,
     "pregnant or just delivered with severe headache, vision changes, sudden swelling, upper belly pain",
     "WHO danger signs in pregnancy; NHS, Pre-eclampsia"),
    ("reduced_fetal_movement", "Baby moving less", MEDICAL, "the baby moving less or not at all later in pregnancy",
     "NHS / RCOG, Your baby's movements (call the maternity unit now, do not wait)"),
    ("preterm_labour_or_waters", "Early labour or waters breaking", MEDICAL,
     "waters breaking before 37 weeks, green or smelly fluid, early regular contractions, cord seen",
     "WHO antenatal danger signs; NHS, Premature labour"),
    ("ectopic_pregnancy", "Possible ectopic pregnancy", MEDICAL,
     "early pregnancy with one-sided pain, shoulder-tip pain, fainting or bleeding", "NHS, Ectopic pregnancy"),
    ("postpartum_haemorrhage", "Heavy bleeding after birth", MEDICAL,
     "soaking a pad an hour, large clots, dizziness or racing heart after birth",
     "WHO recommendations on maternal and newborn care for a positive postnatal experience (2022)"),
    ("blood_clot", "Possible blood clot in the lungs", MEDICAL,
     "a swollen painful leg with sudden breathlessness or chest pain, or coughing blood",
     "NHS, Pulmonary embolism; RCOG Green-top 37a"),
    ("harm_to_baby", "Risk of harm to a baby", HARM_TO_BABY,
     "a parent thinking of harming the baby, hearing voices, postpartum psychosis, shaking a baby",
     "NHS, Postpartum psychosis; WHO postnatal guideline (2022), maternal mental health"),
    ("suicide_risk", "Suicide risk", CRISIS, "wanting to die, a plan or means, goodbyes, indirect talk of not being here",
     "988 Suicide & Crisis Lifeline, risk and warning signs; NHS, Help for suicidal thoughts"),
    ("self_harm", "Self-harm", CRISIS, "hurting oneself now, a self-harm wound, an urge to do it now",
     "NHS, Self-harm; 988 Suicide & Crisis Lifeline"),
    ("overdose", "Overdose", POISONING, "too many tablets taken, or asking how many would kill, drug and alcohol mix",
     "NHS, Overdose; America's Poison Centers"),
    ("poisoning", "Poisoning", POISONING, "swallowed a chemical or someone else's pills; fumes",
     "NHS, Poisoning; America's Poison Centers"),
    ("carbon_monoxide", "Possible carbon monoxide poisoning", MEDICAL,
     "headache, dizziness, nausea or drowsiness in several people or pets in one home, worse at home and better "
     "outside, a faulty boiler, heater or generator, a CO alarm going off", "NHS, Carbon monoxide poisoning"),
    ("button_battery_or_magnet", "Swallowed button battery or magnets", MEDICAL,
     "swallowed, or may have swallowed, a button or coin battery or more than one magnet, or one up the nose or ear",
     "NHS / RoSPA, button batteries; Child Accident Prevention Trust: go to A&E now"),
    ("acute_angle_closure_glaucoma", "Possible acute glaucoma", MEDICAL,
     "a suddenly very painful red eye with blurred vision, haloes round lights, headache, nausea or vomiting",
     "NHS, Glaucoma: go to A&E or eye casualty now; Royal College of Ophthalmologists"),
    ("violence_danger", "In danger from another person", VIOLENCE,
     "partner or family violence, threats to kill, strangulation, a recent assault, a child being hurt",
     "WHO, Responding to intimate partner violence and sexual violence against women (2013); NICE PH50"),
    ("severe_burn", "Serious burn", MEDICAL, "large or deep burns, burns to the face or airway, electrical or "
     "chemical burns", "NHS, Burns and scalds"),
    ("heatstroke", "Possible heatstroke", MEDICAL, "hot, confused, not sweating or collapsed after heat",
     "NHS, Heat exhaustion and heatstroke"),
]  # fmt: skip

MIDWIFE = "Call your midwife or maternity unit today (or NHS 111 in the UK)"
_URGENT_ROWS = [
    ("urgent_child_fever", "Fever in a child that needs a check today",
     "a baby 3 to 6 months with 39 C or more; a child's fever lasting 5 days or more; a feverish child with fewer "
     "wet nappies, not drinking as usual, or a rash that fades",
     "NICE NG143 amber features; NHS, Fever in children: call 111",
     "a fever in a baby or child with a sign NICE calls amber (age, how long it has lasted, drinking or nappies)"),
    ("urgent_dehydration", "Possible dehydration",
     "vomiting or diarrhoea with signs of dehydration (dark or little urine, dizzy, dry mouth, few wet nappies) or "
     "unable to keep fluids down for a day", "NHS, Diarrhoea and vomiting: call 111",
     "vomiting or diarrhoea with signs of dehydration"),
    ("urgent_kidney_infection", "Possible kidney infection",
     "UTI symptoms with fever, shivering, or pain in the side or back; a UTI in a man, a child or in pregnancy",
     "NHS, Kidney infection; NICE NG109", "urine infection symptoms that may have reached the kidneys, or a urine "
     "infection in a man, a child or in pregnancy"),
    ("urgent_dvt", "Possible blood clot in the leg (DVT)",
     "one swollen, painful, warm calf or leg, without breathlessness or chest pain",
     "NHS, DVT: ask for an urgent GP appointment or call 111",
     "one swollen, painful leg, which can be a blood clot (DVT)"),
    ("urgent_eye", "Eye problem that needs a check today",
     "new flashes and floaters or a shadow in vision, sudden blurred vision in one eye, a painful red eye in a "
     "contact-lens wearer, something in the eye that will not come out",
     "NHS, Flashes and floaters; NHS, Red eye", "a sudden change in vision or a painful red eye",
     "See an optician or go to eye casualty today, or call NHS 111 (UK) or your doctor's same-day line"),
    ("urgent_hearing_loss", "Sudden hearing loss",
     "sudden hearing loss in one or both ears over hours to days",
     "NHS, Hearing loss: urgent GP appointment or 111 (sudden sensorineural hearing loss)",
     "sudden hearing loss, which is treated best when it is seen within days"),
    ("urgent_skin_infection", "Possible spreading skin infection or infected bite",
     "red, hot, swollen skin that is spreading (cellulitis), an infected wound with fever, an animal or human bite "
     "that broke the skin", "NHS, Cellulitis; NHS, Animal and human bites: call 111",
     "skin that is red, hot and spreading, an infected wound, or a bite that broke the skin"),
    ("urgent_asthma", "Asthma getting worse",
     "using the reliever more than 3 times a week or waking at night, but able to talk in sentences",
     "NHS, Asthma: urgent GP appointment; BTS/SIGN asthma guideline",
     "asthma that is getting worse, so its treatment needs reviewing"),
    ("urgent_mental_health", "A mental-health crisis",
     "can't cope, not slept for days, new paranoid or unusual thoughts, postnatal depression getting worse, "
     "without an immediate plan or danger", "NHS, Urgent mental health helplines; NHS 111 option 2",
     "a mental-health crisis needs support today, not in weeks",
     "Call NHS 111 and choose option 2 or your local urgent mental health line (UK), call or text 988 (US), or "
     "ask your GP for an appointment today"),
    ("urgent_pregnancy", "A pregnancy problem that needs a check today",
     "in pregnancy: itching of hands and feet, vomiting and unable to keep fluids down, light spotting, a "
     "temperature of 38 C or more, a burning or painful wee",
     "NHS, Intrahepatic cholestasis of pregnancy; NHS, Severe vomiting in pregnancy; call your midwife today",
     "a symptom in pregnancy that your midwife should assess", MIDWIFE),
    ("urgent_postnatal", "A problem after birth that needs a check today",
     "after birth: fever, smelly vaginal discharge, a red hot painful breast with fever (mastitis), a caesarean or "
     "tear wound that is red, hot or oozing", "WHO postnatal guideline (2022); NHS, Mastitis",
     "a possible infection after birth", MIDWIFE),
    ("urgent_diabetes", "Diabetes that needs a check today",
     "high blood sugar that stays high (e.g. above 15 mmol/L twice) without vomiting or fast breathing; repeated "
     "hypos; a foot wound in someone with diabetes", "NHS, High blood sugar; NICE NG19 diabetic foot problems",
     "blood sugar that stays out of range, or a foot wound with diabetes"),
    ("urgent_injury", "An injury that needs a check today",
     "a possible broken bone, a deep or gaping cut that may need stitches, a sprain that may be a fracture, a minor "
     "head injury with a mild headache only", "NHS, Urgent treatment centres; NHS, Broken bones",
     "a possible broken bone or a cut that may need stitches",
     "Go to an urgent treatment centre or minor injuries unit today, or call NHS 111 (UK); urgent care (US)"),
    ("urgent_abdominal_pain", "Tummy pain that needs a check today",
     "belly pain that has lasted hours and is getting worse, or with fever, but not sudden, severe or rigid",
     "NHS, Stomach ache: call 111",
     "tummy pain that keeps getting worse or comes with a fever"),
    ("urgent_allergy", "An allergic reaction to watch today",
     "an allergic reaction with hives or some swelling of the face or eyes, without breathing trouble, throat or "
     "tongue swelling, or faintness", "NHS, Allergies: call 111",
     "an allergic reaction with hives or swelling"),
    ("urgent_dental", "A dental problem that needs a check today",
     "a dental abscess or toothache with swelling of the face or jaw, or a knocked-out adult tooth",
     "NHS, Dental abscess: urgent dentist or 111", "a tooth infection with swelling, or a knocked-out adult tooth",
     "Call your dentist for an urgent appointment today, or NHS 111 (UK) for an urgent dentist"),
    ("urgent_chest_infection", "A chest infection that needs a check today",
     "a cough with fever and getting short of breath on exertion, or lasting over 3 weeks; an older person with a "
     "chest infection getting worse", "NHS, Chest infection: call 111",
     "a chest infection that is getting worse or making you short of breath"),
]  # fmt: skip

#: category id -> Category, emergency categories first, in the order the advice is tried.
CATEGORIES: dict[str, Category] = {
    **{row[0]: Category(row[0], row[1], EMERGENCY, *row[2:]) for row in _EMERGENCY_ROWS},
    **{row[0]: Category(row[0], row[1], URGENT, SAME_DAY, *row[2:]) for row in _URGENT_ROWS},
}


def level_of(category: str | None) -> str:
    """The level of a category id: emergency, urgent, or routine for None and unknown ids."""
    found = CATEGORIES.get(category or "")
    return found.level if found else ROUTINE
