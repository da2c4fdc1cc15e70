"""Study and search-space files -> validated, frozen StudySpec / SearchSpace (pydantic v2).

Errors name the file, the key path, the bad value and what is allowed.
"""

from groupwise.studyfiles._load import (
    SPACE_NAME,
    parse_yaml_text,
    read_search_space,
    read_study,
    read_study_document,
    study_document,
    validate_file,
)
from groupwise.studyfiles._space import (
    Choices,
    FloatSpan,
    IntSpan,
    Relative,
    ScheduleSpace,
    SchemeRange,
    SearchSpace,
    Sharing,
    to_domain,
)
from groupwise.studyfiles._study import (
    Budget,
    Confirm,
    Faults,
    Named,
    Objective,
    StudySpec,
    TaskRef,
    Training,
    TransferTarget,
    WarmStart,
    Workers,
)

__all__ = [
    "SPACE_NAME",
    "Budget",
    "Choices",
    "Confirm",
    "Faults",
    "FloatSpan",
    "IntSpan",
    "Named",
    "Objective",
    "Relative",
    "ScheduleSpace",
    "SchemeRange",
    "SearchSpace",
    "Sharing",
    "StudySpec",
    "TaskRef",
    "Training",
    "TransferTarget",
    "WarmStart",
    "Workers",
    "parse_yaml_text",
    "read_search_space",
    "read_study",
    "read_study_document",
    "study_document",
    "to_domain",
    "validate_file",
]
