"""The survey's map as data: its methods, their place in the taxonomy, and the chapters that run them (appendix)."""
from .taxonomy import (GUIDANCE_GROUPS, GUIDANCE_PROPERTIES, PARADIGMS, PARTS, TASKS, Method, TaxonomyError,
                       by_year, coverage, link, load, markdown_table, runnable, table1, table2, table_guidance)

__all__ = ["GUIDANCE_GROUPS", "GUIDANCE_PROPERTIES", "PARADIGMS", "PARTS", "TASKS", "Method", "TaxonomyError", "by_year",
           "coverage", "link", "load", "markdown_table", "runnable", "table1", "table2", "table_guidance"]
