"""KFP shell: find this run's raw data (dated or newest folder) before it is imported."""

from gemini_sft.components.base import build_component


def resolve_raw_data(raw_data_uri: str) -> str:
    """This run's raw data URI.

    ``{date}``, ``{yyyy}``, ``{mm}``, ``{dd}`` become today's UTC date and
    ``{latest}`` the newest sub-folder (``gs://b/raw/{latest}/tickets.jsonl``),
    so a scheduled run picks up the newest export. A URI without placeholders
    is returned unchanged. Fails (InputFormatError) when the folder is empty.
    """
    import logging

    from gemini_sft.schedule import resolve_data_uri

    resolved = resolve_data_uri(raw_data_uri)
    logging.getLogger("gemini_sft.components.resolve_data").info(
        "Raw data for this run: %s", resolved
    )
    return resolved


resolve_raw_data_op = build_component(resolve_raw_data)
