"""Advice shown before any answer: emergency advice by advice group and category, same-day advice for urgent ones.

What each emergency group says comes from the services it names: emergency numbers 911 (US), 999 (UK), 112 (EU);
the 988 Suicide & Crisis Lifeline (US) and Samaritans 116 123 (UK); America's Poison Centers 1-800-222-1222 (US) and
NHS 111 (UK); the US National Domestic Violence Hotline 1-800-799-7233 and the UK National Domestic Abuse Helpline
0808 2000 247. The "what to do now" lines follow the category's source in :mod:`.categories` (NHS first-aid pages:
aspirin for a suspected heart attack, adrenaline auto-injector for anaphylaxis, pressure on a bleeding wound, the
recovery position after a seizure; Resuscitation Council UK for choking; NHS Carbon monoxide poisoning: fresh air,
appliances off, the gas emergency line; RoSPA / Child Accident Prevention Trust: A&E straight away after a button
battery, nothing to eat or drink; NHS pages that say "go to A&E now" for testicle pain, cauda equina and acute
glaucoma; NICE NG143 for a fever under 3 months).

Urgent categories get one paragraph: "This should be checked today: <reason>. <where to go>." then when to call the
emergency number instead (NHS 111 and urgent-care guidance, the category's source).
"""

from __future__ import annotations

from .categories import CATEGORIES, CRISIS, EMERGENCY, GP_111, HARM_TO_BABY, MEDICAL, POISONING, VIOLENCE

EMERGENCY_NUMBER = "your local emergency number (911 in the US, 999 in the UK, 112 in the EU)"

GROUP_ADVICE = {
    MEDICAL: (
        f"This may be an emergency. Call {EMERGENCY_NUMBER} now or go to the nearest emergency department. "
        "Do not wait for an online answer."
    ),
    CRISIS: (
        "If you are thinking about suicide or about hurting yourself, call or text 988 (US Suicide & Crisis "
        "Lifeline), call Samaritans on 116 123 (UK), or call "
        f"{EMERGENCY_NUMBER} now. If you have already hurt yourself or taken something, call the emergency number "
        "now. You are not alone, and talking to someone now can help."
    ),
    POISONING: (
        f"Call {EMERGENCY_NUMBER} now if the person is unconscious, fitting, or has trouble breathing. Otherwise call "
        "Poison Control now: 1-800-222-1222 (US) or NHS 111 (UK). Do not make them vomit; keep the packet or bottle "
        "to show. If this was on purpose, the 988 Lifeline (call or text 988) is there too."
    ),
    VIOLENCE: (
        f"If you are in danger now, call {EMERGENCY_NUMBER}. When you can do so safely, a domestic-violence line can "
        "help you plan: US National Domestic Violence Hotline 1-800-799-7233 (text START to 88788), UK National "
        "Domestic Abuse Helpline 0808 2000 247."
    ),
    HARM_TO_BABY: (
        f"Call {EMERGENCY_NUMBER} now. Do not leave the baby alone with the person who may harm them: put the baby "
        "down somewhere safe, such as a cot, and get another adult to stay. Sudden strange thoughts after birth "
        "(postpartum psychosis) are a medical emergency and treatable."
    ),
}

#: category id -> what to do while help is on its way (only where the source gives a step).
DO_NOW = {
    "heart_attack": "Sit down and rest. If you are not allergic to aspirin, chew one adult aspirin (300 mg) "
    "while you wait.",
    "stroke": "Note the time the symptoms started; do not eat or drink anything.",
    "thunderclap_headache": "Tell the call handler the headache came on suddenly and note the time it started.",
    "choking": "If they cannot breathe, cough or speak: up to 5 back blows, then up to 5 abdominal thrusts; "
    "repeat until help arrives.",
    "anaphylaxis": "Use an adrenaline auto-injector (EpiPen) if there is one, in the outer thigh. Lie down with "
    "legs raised, or sit up if breathing is hard.",
    "asthma_attack": "Sit up straight and take one puff of the reliever inhaler every 30 to 60 seconds, up to 10 "
    "puffs, while you wait.",
    "severe_bleeding": "Press firmly on the wound with a clean cloth and keep pressing.",
    "unconscious": "If they are not breathing normally, start CPR: push hard and fast in the middle of the chest; "
    "the call handler will guide you.",
    "seizure": "Do not hold them down or put anything in their mouth. Move dangerous things away, time the "
    "seizure, and turn them on their side when it stops.",
    "severe_hypoglycaemia": "If they are awake and can swallow, give a sugary drink or glucose; if not, give "
    "nothing by mouth.",
    "severe_burn": "Cool the burn under cool running water for 20 minutes; do not use ice or creams.",
    "heatstroke": "Move them somewhere cool, remove extra clothing and cool the skin with water.",
    "poisoning": "Move away from fumes into fresh air if you can do so safely.",
    "carbon_monoxide": "Get everyone, pets too, out into fresh air now and leave doors and windows open. Turn off "
    "the boiler, heater or cooker if you can do it safely, and do not go back in. In the UK, report it to the gas "
    "emergency line on 0800 111 999.",
    "button_battery_or_magnet": "Go to A&E now even if they seem well: a button battery can burn through the food "
    "pipe in hours, and swallowed magnets can pinch the gut together. Do not let them eat or drink, do not make "
    "them sick, and take the packet or a matching battery with you.",
    "testicular_torsion": "Go to A&E now: a twisted testicle needs an operation within hours to save it.",
    "cauda_equina": "Go to A&E now, even if you are not sure: cauda equina syndrome needs treatment in hospital "
    "as soon as possible.",
    "acute_angle_closure_glaucoma": "Go to A&E or eye casualty now: acute glaucoma can damage sight within hours.",
    "febrile_infant": "A baby under 3 months with a temperature of 38 C (100.4 F) or more needs a doctor now, "
    "however well they seem (NICE NG143): go to A&E now or call the emergency number.",
}

WORSE = f"If it gets worse, or you are worried it cannot wait, call {EMERGENCY_NUMBER}."
#: urgent category id -> when to call the emergency number instead (the category's source names these signs).
WORSE_IF = {
    "urgent_child_fever": "If the child becomes floppy or hard to wake, has a rash that does not fade under a "
    f"glass, or breathes fast or with grunting, call {EMERGENCY_NUMBER} now.",
    "urgent_dvt": f"If you get short of breath, chest pain or cough up blood, call {EMERGENCY_NUMBER} now.",
    "urgent_asthma": "If the reliever stops helping or you are too breathless to talk, call "
    f"{EMERGENCY_NUMBER} now.",
    "urgent_mental_health": "If you are thinking of ending your life or are in danger now, call or text 988 (US), "
    f"call Samaritans on 116 123 (UK), or call {EMERGENCY_NUMBER}.",
    "urgent_pregnancy": "If there is heavy bleeding, severe pain, a severe headache with vision changes, or the "
    f"baby moves less, call your maternity unit or {EMERGENCY_NUMBER} now.",
    "urgent_diabetes": "If there is vomiting, fast deep breathing or drowsiness, call "
    f"{EMERGENCY_NUMBER} now.",
    "urgent_abdominal_pain": "If the pain becomes sudden and severe, the belly goes hard, or you faint, call "
    f"{EMERGENCY_NUMBER} now.",
    "urgent_allergy": "If breathing gets hard, the throat or tongue swells, or there is faintness, use an "
    f"adrenaline auto-injector if there is one and call {EMERGENCY_NUMBER} now.",
}


def urgent_advice(category: str) -> str:
    """The same-day advice for an urgent category, or for an emergency category whose probability fell in the
    band between the urgent and emergency thresholds (the screen shows amber, not red, there).

    Returns:
        ``"This should be checked today: <reason>. <where>. <when to call the emergency number instead>"``; for an
        emergency category the reason names its signs and the last sentence says to call now if they are present.

    Raises:
        KeyError: ``category`` is not in :data:`.categories.CATEGORIES`.
    """
    cat = CATEGORIES[category]
    if cat.level == EMERGENCY:
        return (
            f"This should be checked today: some of what you describe is close to the signs of an emergency "
            f"({cat.title.lower()}: {cat.signs}). {GP_111}. If any of those signs is happening now, call "
            f"{EMERGENCY_NUMBER} now."
        )
    return f"This should be checked today: {cat.reason}. {cat.where}. {WORSE_IF.get(category, WORSE)}"


def advice_for(categories: list[str]) -> str:
    """The advice for the categories found: emergency advice when any is an emergency, else same-day advice.

    Args:
        categories: category ids from :data:`.categories.CATEGORIES` (unknown ids count as medical emergencies).

    Returns:
        Plain text. Emergency: one paragraph per advice group present (crisis, harm to a baby, violence,
        poisoning, medical), then the first emergency category's "do now" line when there is one. Urgent only:
        :func:`urgent_advice` of the first. Empty string when ``categories`` is empty.
    """
    if not categories:
        return ""
    emergencies = [c for c in categories if c not in CATEGORIES or CATEGORIES[c].level == EMERGENCY]
    if not emergencies:
        return urgent_advice(categories[0])
    groups = [CATEGORIES[c].advice if c in CATEGORIES else MEDICAL for c in emergencies]
    order = [CRISIS, HARM_TO_BABY, VIOLENCE, POISONING, MEDICAL]
    paragraphs = [GROUP_ADVICE[g] for g in order if g in groups]
    steps = [DO_NOW[c] for c in emergencies if c in DO_NOW][:1]
    return "\n\n".join(paragraphs + steps)
