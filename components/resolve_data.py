"""KFP shell: find this run's raw data (dated or newest folder) and hand it on as the raw Dataset artifact.

The step itself emits the artifact (its URI the resolved object), so no importer has to take a URI from a
task output at run time. The work is done by :func:`gemini_sft.schedule.resolve_data_uri`.
"""

from gemini_sft.contracts import describe_component
from kfp.dsl import Dataset, Output


@describe_component(
    """Resolve {date} / {latest} in the raw data URI and emit the raw Dataset artifact pointing at that object.

    A URI without placeholders is used unchanged. Fails with InputFormatError when a {latest} folder is empty.""",
    inputs={"raw_data_uri": "The raw examples; {date}, {yyyy}, {mm}, {dd} and {latest} are filled in at run time."},
    outputs={"raw_data": "The raw examples of this run: its URI is the resolved object; metadata keeps the pattern."},
)
def resolve_raw_data(raw_data_uri: str, raw_data: Output[Dataset]) -> None:
    import logging

    from gemini_sft.schedule import resolve_data_uri

    resolved = resolve_data_uri(raw_data_uri)
    raw_data.uri = resolved
    raw_data.metadata.update({"source_uri": raw_data_uri, "resolved_uri": resolved})
    logging.getLogger("gemini_sft.components.resolve_data").info("Raw data for this run: %s", resolved)
