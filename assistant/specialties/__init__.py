"""Specialties: the 30-class taxonomy (:mod:`.taxonomy`) and the question -> specialty classifier (:mod:`.router`).

llama-md specialty "a rash on both elbows for two weeks"      # one JSON line: class, p, top-3, unsure
llama-md specialty train                                       # build the classifier (make setup does)
llama-md specialty eval                                        # held-out patient questions + silver slices
"""

from .taxonomy import OTHER, Specialty, UnknownSpecialtyError, check_slug, get_specialty, load_taxonomy, slugs

__all__ = [
    "OTHER",
    "Specialty",
    "UnknownSpecialtyError",
    "check_slug",
    "get_specialty",
    "load_taxonomy",
    "slugs",
]
