"""Emergency advice shown before any answer, by advice group and category.

What each group says comes from the services it names: emergency numbers 911 (US), 999 (UK), 112 (EU); the 988
Suicide & Crisis Lifeline (US) and Samaritans 116 123 (UK); America's Poison Centers 1-800-222-1222 (US) and NHS 111
(UK); the US National Domestic Violence Hotline 1-800-799-7233 and the UK National Domestic Abuse Helpline
0808 2000 247. The "what to do now" lines follow the category's source in :mod:`.categories` (NHS first-aid pages:
aspirin for a suspected heart attack, adrenaline auto-injector for anaphylaxis, pressure on a bleeding wound, the
recovery position after a seizure; Resuscitation Council UK for choking).
"""

from __future__ import annotations

from .categories import CATEGORIES, CRISIS, HARM_TO_BABY, MEDICAL, POISONING, VIOLENCE

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

#: category id -> what to do while help is on its way (only where the source gives a first-aid step).
DO_NOW = {
    "heart_attack": "Sit down and rest. If you are not allergic to aspirin, chew one adult aspirin (300 mg) "
    "while you wait.",
    "stroke": "Note the time the symptoms started; do not eat or drink anything.",
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
}


def advice_for(categories: list[str]) -> str:
    """The emergency advice for the categories found, most urgent group first.

    Args:
        categories: category ids from :data:`.categories.CATEGORIES` (unknown ids count as medical).

    Returns:
        Plain text: one paragraph per advice group present (crisis, harm to a baby, violence, poisoning, medical),
        then the first category's "do now" line when there is one. Empty string when ``categories`` is empty.
    """
    if not categories:
        return ""
    groups = [CATEGORIES[c].advice if c in CATEGORIES else MEDICAL for c in categories]
    order = [CRISIS, HARM_TO_BABY, VIOLENCE, POISONING, MEDICAL]
    paragraphs = [GROUP_ADVICE[g] for g in order if g in groups]
    steps = [DO_NOW[c] for c in categories if c in DO_NOW][:1]
    return "\n\n".join(paragraphs + steps)
