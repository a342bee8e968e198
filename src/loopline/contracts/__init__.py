"""Data contracts: Great Expectations suites (``data_contracts/*.json``) run on training data and
feedback batches, of sequence or token (NER) rows; bad rows are quarantined with a reason, bad batches
raise ContractViolation."""

from __future__ import annotations

from loopline.contracts.result import CheckOutcome, ContractResult
from loopline.contracts.suites import ContractSuite, Rule, default_suites_dir, load_suite
from loopline.contracts.validate import (
    FEEDBACK_SUITE,
    TOKEN_FEEDBACK_SUITE,
    TOKEN_TRAINING_SUITE,
    TRAINING_SUITE,
    feedback_parameters,
    training_parameters,
    validate_feedback_batch,
    validate_token_data,
    validate_token_feedback,
    validate_training_data,
)

__all__ = [
    "FEEDBACK_SUITE",
    "TOKEN_FEEDBACK_SUITE",
    "TOKEN_TRAINING_SUITE",
    "TRAINING_SUITE",
    "CheckOutcome",
    "ContractResult",
    "ContractSuite",
    "Rule",
    "default_suites_dir",
    "feedback_parameters",
    "load_suite",
    "training_parameters",
    "validate_feedback_batch",
    "validate_token_data",
    "validate_token_feedback",
    "validate_training_data",
]
