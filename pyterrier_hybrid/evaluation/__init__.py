"""Evaluation of retrievers on LAReQA (monolingual, cross-lingual and multilingual settings) and ir_datasets.

    from pyterrier_hybrid.evaluation import evaluate_lareqa
    result = evaluate_lareqa(factory, "xquad-r", langs=["de", "en"], system="bm25")
    print(result.to_markdown())          # Table-1 layout: mono / cross / multi mAP, R@k and rank distance
    result.save("results/bm25")          # CSVs, summary Markdown/JSON, mAP heatmap PNG

``factory(candidates) -> pt.Transformer`` builds a retriever ranking ALL the given candidates; a retriever that
also offers ``docnos`` and ``score_matrix(topics)`` (:class:`ScoreMatrixRetriever`) is scored without building
results frames. See :mod:`pyterrier_hybrid.evaluation.runner` and :mod:`pyterrier_hybrid.evaluation.measures`.
"""
from .measures import (
    AP,
    RANK_DISTANCE,
    IncompleteRankingError,
    MeasureMismatchError,
    SettingRanking,
    average_precision,
    exact_rank_measures,
    rank_distance,
)
from .plots import plot_map_heatmap, plot_rank_distance_bars, plot_setting_bars
from .report import EvaluationResult, comparison_table, markdown_table, results_markdown
from .runner import (
    SCORE_MATRIX_METHOD,
    ExactRanker,
    IrdsEvaluationConfig,
    LAReQAEvaluationConfig,
    ScoreMatrixRetriever,
    evaluate_irds,
    evaluate_lareqa,
    has_score_matrix,
)
from .settings import EvaluationSetting, group_by_candidates, lareqa_settings

__all__ = [
    "AP",
    "RANK_DISTANCE",
    "SCORE_MATRIX_METHOD",
    "EvaluationResult",
    "EvaluationSetting",
    "ExactRanker",
    "IncompleteRankingError",
    "IrdsEvaluationConfig",
    "LAReQAEvaluationConfig",
    "MeasureMismatchError",
    "ScoreMatrixRetriever",
    "SettingRanking",
    "average_precision",
    "comparison_table",
    "evaluate_irds",
    "evaluate_lareqa",
    "exact_rank_measures",
    "group_by_candidates",
    "has_score_matrix",
    "lareqa_settings",
    "markdown_table",
    "plot_map_heatmap",
    "plot_rank_distance_bars",
    "plot_setting_bars",
    "rank_distance",
    "results_markdown",
]
