"""KFP shell: find this run's raw data (dated or newest folder) before it is imported."""

from gemini_sft.contracts import describe_component


@describe_component(
    """This run's raw data URI.

    ``{date}``, ``{yyyy}``, ``{mm}``, ``{dd}`` become today's UTC date and
    ``{latest}`` the newest sub-folder (``gs://b/raw/{latest}/tickets.jsonl``),
    so a scheduled run picks up the newest export. A URI without placeholders
    is returned unchanged. Fails (InputFormatError) when the folder is empty.""",
    inputs={"raw_data_uri": "The raw data URI, with {date}, {yyyy}, {mm}, {dd} or {latest} placeholders or none."},
    outputs={"Output": "The resolved URI of this run's raw data."},
)
def resolve_raw_data(raw_data_uri: str) -> str:
    import logging

    from gemini_sft.schedule import resolve_data_uri

    resolved = resolve_data_uri(raw_data_uri)
    logging.getLogger("gemini_sft.components.resolve_data").info(
        "Raw data for this run: %s", resolved
    )
    return resolved
