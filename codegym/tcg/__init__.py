"""The Test Case Generator: generate, filter, store, evaluate and train (see submodules)."""

from .data import dpo_rows, sft_rows
from .evaluate import TCGEvaluation, evaluate_generator, mutants
from .generator import (
    FilterReport,
    LLMTestCaseGenerator,
    TestCaseGenerator,
    generate_test_file,
    label_by_agreement,
    label_with_reference,
    parse_test_lines,
    tcg_request,
)
from .store import load_generated, save_generated, with_generated_tests

__all__ = ["FilterReport", "LLMTestCaseGenerator", "TCGEvaluation", "TestCaseGenerator", "dpo_rows", "evaluate_generator",
           "generate_test_file", "label_by_agreement", "label_with_reference", "load_generated", "mutants",
           "parse_test_lines",
           "save_generated", "sft_rows", "tcg_request", "with_generated_tests"]
