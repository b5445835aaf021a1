"""Generator of the shipped sample dataset: customer-support ticket triage.

Each example maps a customer ticket to a three-line triage answer::

    Category: billing
    Priority: high
    Action: Refund the duplicate charge and confirm to the customer by email.

The category and action follow from the kind of problem the ticket describes
(its wording: "charged twice", "tracking", "two-factor", ...), the priority
from its urgency cues ("our whole team is blocked", "no rush", ...), so a
model that learned from the training split can answer held-out tickets while
one that did not cannot. Ticket texts are built from templates with many
slots (products, plans, order numbers, dates, devices, names) so they are
varied.

The file is written the way real exports look: records in five formats mixed
in one file (Gemini ``contents`` with a system instruction, ``input``/
``output``, ``input_text``/``output_text``, ``prompt``/``completion``, chat
``messages``), with blank lines, exact and cross-format duplicates, empty
outputs, stray whitespace, decomposed Unicode, a few unparseable lines,
tickets that mention e-mail addresses, phone numbers and test card numbers,
and a couple of tickets labelled twice with different answers.

Output is deterministic for a seed. ``python -m gemini_sft.sample_data --out
PATH`` writes it; the shipped ``gemini_sft/data/support_tickets.jsonl`` is
this generator's output for :data:`DEFAULT_SEED`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_SEED = 20261121
DEFAULT_EXAMPLES = 340
SHIPPED_SAMPLE = "support_tickets.jsonl"
SYSTEM_INSTRUCTION = (
    "You are a customer-support triage assistant. Read the ticket and answer in exactly three lines: "
    "'Category: <billing|technical|account|shipping|returns|feedback>', "
    "'Priority: <low|medium|high|urgent>' and 'Action: <the next step for the support agent>'."
)
CATEGORIES: tuple[str, ...] = ("billing", "technical", "account", "shipping", "returns", "feedback")
PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "urgent")
LABEL_PATTERN = r"Category: (\w+)"


@dataclass(frozen=True)
class Issue:
    """A kind of problem: its category, next action, default priority and ways customers describe it."""

    category: str
    action: str
    default_priority: str
    templates: tuple[str, ...]


ISSUES: tuple[Issue, ...] = (
    # billing
    Issue("billing", "Refund the duplicate charge and confirm to the customer by email.", "high", (
        "I was charged twice for my {plan} subscription this month, {amount} each time.",
        "My bank statement shows two identical charges of {amount} from you on {date}.",
        "You billed my card twice for order {order}. Please refund the second payment.",
        "There is a double charge on my account for the {plan} plan, both on {date}.",
    )),
    Issue("billing", "Reissue the invoice with the corrected company details.", "medium", (
        "Invoice {invoice} has the wrong company name and VAT number on it.",
        "Our accounting team needs invoice {invoice} corrected: the billing address is outdated.",
        "The invoice for {date} lists the wrong VAT ID, can you send a corrected invoice?",
    )),
    Issue("billing", "Check the refund status with the payment provider and update the customer.", "medium", (
        "I returned order {order} three weeks ago and the refund of {amount} still hasn't reached my card.",
        "Where is my refund? You confirmed it on {date} but nothing has arrived.",
        "The refund for order {order} shows as processed but my bank sees nothing.",
    )),
    Issue("billing", "Ask the customer to update the payment method and retry the charge.", "high", (
        "My card keeps getting declined when I try to renew the {plan} plan.",
        "Payment failed again for my {plan} subscription even though the card is valid until {expiry}.",
        "I can't pay my renewal, the checkout says the card was declined.",
    )),
    Issue("billing", "Explain the price change and offer the loyalty discount if eligible.", "low", (
        "My {plan} subscription went up from {amount} to {amount2} without any notice.",
        "Why did my monthly price increase to {amount2}? Nobody told me about a price change.",
        "I noticed the {plan} plan now costs {amount2} instead of {amount}, was this a mistake?",
    )),
    # technical
    Issue("technical", "Collect the app version and crash logs and escalate to engineering.", "high", (
        "The {platform} app crashes every time I {app_action}.",
        "Since the last update the app closes itself on {platform} when I {app_action}.",
        "Your app freezes and then crashes on my {device} whenever I {app_action}.",
    )),
    Issue("technical", "Check the status page, link the ticket to the open incident and update the customer.", "urgent", (
        "The dashboard won't load at all, we only get a {http_error} error.",
        "Your service seems to be down: every page returns {http_error} since {time}.",
        "Nobody in our company can reach the web app, it shows a {http_error} error page.",
    )),
    Issue("technical", "Verify the API key scopes and send the authentication guide.", "medium", (
        "Our integration gets 401 Unauthorized from the {endpoint} API endpoint since {date}.",
        "The API rejects our requests to {endpoint} with an authentication error, the key is new.",
        "Webhook calls to {endpoint} started failing with 403 Forbidden after we rotated our API key.",
    )),
    Issue("technical", "Gather the workspace size and timings and open a performance investigation.", "medium", (
        "Exporting a report now takes {minutes} minutes, it used to take seconds.",
        "The search page has become extremely slow, around {minutes} minutes per query in {browser}.",
        "Loading the projects list takes {minutes} minutes in {browser}, everything is sluggish.",
    )),
    Issue("technical", "Ask for the sync error code and device details and send the reset-sync steps.", "medium", (
        "My data is not syncing between my {device} and the web version, error {sync_code}.",
        "Sync keeps failing with code {sync_code} on {platform}.",
        "Changes I make on my {device} never show up on my laptop, the sync error says {sync_code}.",
    )),
    # account
    Issue("account", "Resend the password reset link and check the address is not on the suppression list.", "medium", (
        "I requested a password reset {count} times but the email never arrives.",
        "The reset password link doesn't come through, I checked spam already.",
        "I forgot my password and the reset email is not reaching my inbox.",
    )),
    Issue("account", "Verify the customer's identity and reset two-factor authentication.", "high", (
        "I lost my phone and can't get the two-factor code to sign in.",
        "My authenticator app was wiped when I changed to a new {device}, I can't log in anymore.",
        "Two-factor authentication codes are not accepted and I'm locked out of my account.",
    )),
    Issue("account", "Transfer the account ownership after verifying both account holders.", "medium", (
        "Our account owner {name2} left the company, please transfer ownership to me.",
        "We need to change the admin of our workspace from {name2} to our new IT manager.",
        "How do I move the account ownership to a colleague? {name2} is leaving next week.",
    )),
    Issue("account", "Start the account deletion request and confirm the timeline to the customer.", "low", (
        "Please delete my account and all the personal data you hold about me.",
        "I want to close my account permanently and have my data erased under GDPR.",
        "Can you remove my profile and data? I no longer use the service.",
    )),
    Issue("account", "Unlock the account and remind the customer how to reset the password safely.", "high", (
        "My account got locked after too many login attempts.",
        "It says my account is temporarily locked, I typed the wrong password a few times.",
        "I'm locked out after failed sign-in attempts and can't access my {plan} workspace.",
    )),
    # shipping
    Issue("shipping", "Open a trace with the carrier and share the tracking update with the customer.", "medium", (
        "My package with {carrier} hasn't moved since {date}, the tracking is stuck.",
        "Order {order} still shows 'in transit' with {carrier} after {days} days.",
        "Tracking for my {product} has not updated for a week, where is it?",
    )),
    Issue("shipping", "Contact the carrier to redirect the parcel before delivery.", "high", (
        "I entered the wrong delivery address for order {order}, can you change it?",
        "The shipping address on my order {order} is my old flat, please redirect the parcel.",
        "I moved last week and my {product} is going to the old address with {carrier}.",
    )),
    Issue("shipping", "Ship a replacement and file a damage claim with the carrier.", "high", (
        "My {product} arrived broken, the box was crushed by {carrier}.",
        "The {product} from order {order} came damaged, the glass is cracked.",
        "The parcel was torn open and the {product} inside is scratched and dented.",
    )),
    Issue("shipping", "Refund the express shipping fee and confirm the new delivery date.", "medium", (
        "I paid for express shipping but order {order} is taking {days} days.",
        "Next-day delivery was promised for my {product}, it's been {days} days.",
        "Why did my express order arrive a week late? I paid extra for fast shipping.",
    )),
    # returns
    Issue("returns", "Email a prepaid return label and the return instructions.", "low", (
        "How do I return the {product} I bought on {date}? It doesn't fit.",
        "I'd like to send back my {product}, can you send me a return label?",
        "I want to return order {order}, what is the return process?",
    )),
    Issue("returns", "Ship the correct item and send a return label for the wrong one.", "high", (
        "I ordered a {product} but received a {product2} instead.",
        "Wrong item in my package: order {order} should be a {product}, not a {product2}.",
        "You sent me the wrong product, I got a {product2} instead of the {product} I paid for.",
    )),
    Issue("returns", "Explain the return policy and offer store credit as a goodwill gesture.", "low", (
        "I know it's been more than 30 days, but can I still return my {product}?",
        "The return window closed last week, is there any way to return the {product}?",
        "I missed the return deadline for order {order}, can you make an exception?",
    )),
    # feedback
    Issue("feedback", "Log the feature request and thank the customer for the suggestion.", "low", (
        "It would be great if you added a dark mode to the {platform} app.",
        "Feature request: please let us export reports to CSV.",
        "Could you add keyboard shortcuts to the editor? It would save us a lot of time.",
    )),
    Issue("feedback", "Thank the customer and share the praise with the team.", "low", (
        "Just wanted to say {name2} from your support team was fantastic yesterday.",
        "Thank you for the quick fix last week, the new version works perfectly.",
        "Great job on the redesign, the app is much easier to use now.",
    )),
)

# Urgency cues and the priority they signal; an empty cue keeps the issue's default priority.
PRIORITY_CUES: dict[str, tuple[str, ...]] = {
    "urgent": (
        "Our whole team is blocked right now.",
        "This is stopping all our sales today, please help immediately.",
        "We have a product launch in two hours, this is an emergency.",
        "All of our customers are affected, we are losing money every minute.",
    ),
    "high": (
        "I need this sorted by tomorrow at the latest.",
        "This is the second time I'm writing about this.",
        "It's affecting several of my own customers.",
    ),
    "low": (
        "No rush, whenever you have time.",
        "Not urgent at all, just wanted to flag it.",
        "Whenever someone gets a chance.",
    ),
}
GREETINGS: tuple[str, ...] = ("Hi,", "Hello,", "Hello support team,", "Hi there,", "Hey,", "Good morning,", "Dear support,", "")
SIGN_OFFS: tuple[str, ...] = ("Thanks,", "Thank you,", "Regards,", "Best,", "Cheers,", "Kind regards,", "")
NAMES: tuple[str, ...] = (
    "Anna", "Ben", "Carlos", "Deepa", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam",
    "Maya", "Noah", "Olga", "Pedro", "Quinn", "Ravi", "Sofia", "Tom", "José", "Zoë", "Renée", "Søren",
)
SLOTS: dict[str, tuple[str, ...]] = {
    "plan": ("Basic", "Pro", "Business", "Team", "Premium", "Starter"),
    "product": ("wireless headphones", "standing desk", "espresso machine", "running shoes", "phone case",
                "desk lamp", "backpack", "smart watch", "blender", "office chair", "rain jacket", "kettle"),
    "carrier": ("UPS", "DHL", "FedEx", "USPS", "Royal Mail", "PostNL"),
    "platform": ("iOS", "Android", "Windows", "macOS"),
    "device": ("iPhone", "Android phone", "iPad", "tablet", "Pixel"),
    "browser": ("Chrome", "Firefox", "Safari", "Edge"),
    "app_action": ("open a project", "upload a photo", "try to log in", "share a document",
                   "switch workspaces", "export a report", "tap the notifications tab"),
    "http_error": ("502 Bad Gateway", "503 Service Unavailable", "500 Internal Server Error", "504 Gateway Timeout"),
    "endpoint": ("/v2/orders", "/v2/customers", "/v1/invoices", "/v2/webhooks", "/v1/reports"),
    "sync_code": ("SYNC-409", "SYNC-500", "E-1042", "E-2231"),
    "date": ("March 3", "last Tuesday", "the 14th", "Monday", "June 28", "the first of the month", "yesterday"),
    "time": ("9am", "this morning", "about an hour ago", "midnight", "lunchtime"),
    "expiry": ("08/27", "11/28", "02/29", "05/27"),
}


def _slot_values(rng: random.Random) -> dict[str, str]:
    values = {name: rng.choice(options) for name, options in SLOTS.items()}
    values["product2"] = rng.choice([p for p in SLOTS["product"] if p != values["product"]])
    values["name2"] = rng.choice(NAMES)
    amount = rng.randrange(9, 200)
    values["amount"] = f"${amount}.{rng.choice(('00', '99', '49'))}"
    values["amount2"] = f"${amount + rng.randrange(3, 40)}.{rng.choice(('00', '99'))}"
    values["order"] = rng.choice(("#", "ORD-", "")) + str(rng.randrange(10000, 99999))
    values["invoice"] = f"INV-{rng.randrange(2024, 2027)}-{rng.randrange(100, 9999):04d}"
    values["days"] = str(rng.randrange(5, 16))
    values["minutes"] = str(rng.randrange(3, 25))
    values["count"] = rng.choice(("three", "four", "five", "several"))
    return values


def _contact_line(rng: random.Random, name: str) -> str:
    """Contact details as customers write them (reserved example domains and 555 numbers)."""
    handle = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    email = f"{handle}.{rng.randrange(10, 99)}@example.com"
    phone = rng.choice((f"+1 415-555-01{rng.randrange(10, 99)}", f"(212) 555-01{rng.randrange(10, 99)}",
                        f"+44 20 7946 0{rng.randrange(100, 999)}"))
    return rng.choice((
        f"You can reach me at {email}.",
        f"Call me on {phone} if that's easier.",
        f"My email is {email} and my phone is {phone}.",
    ))


@dataclass(frozen=True)
class Ticket:
    """One generated ticket and its triage answer."""

    text: str
    category: str
    priority: str
    action: str

    @property
    def response(self) -> str:
        """The three-line triage answer."""
        return f"Category: {self.category}\nPriority: {self.priority}\nAction: {self.action}"


def make_ticket(rng: random.Random) -> Ticket:
    """A random ticket: greeting, issue, optional contact line, urgency cue, sign-off."""
    issue = rng.choice(ISSUES)
    values = _slot_values(rng)
    name = rng.choice(NAMES)
    sentences = [rng.choice(issue.templates).format(**values)]
    if rng.random() < 0.07:
        sentences.append(_contact_line(rng, name))
    if rng.random() < 0.015:
        sentences.append("The card I used was 4111 1111 1111 1111.")
    priority = issue.default_priority
    cue_priorities = ["low"] if issue.category == "feedback" else list(PRIORITY_CUES)
    if rng.random() < 0.6:
        priority = rng.choice(cue_priorities)
        sentences.append(rng.choice(PRIORITY_CUES[priority]))
    greeting = rng.choice(GREETINGS)
    sign_off = rng.choice(SIGN_OFFS)
    text = " ".join(s for s in (greeting, *sentences) if s)
    if sign_off:
        text += f"\n{sign_off} {name}"
    return Ticket(text=text, category=issue.category, priority=priority, action=issue.action)


def _messy(rng: random.Random, text: str) -> str:
    """``text`` with the stray whitespace and decomposed accents of real exports, sometimes."""
    roll = rng.random()
    if roll < 0.08:
        text = f"  {text}\n"
    elif roll < 0.14:
        text = f"\t{text}  "
    if rng.random() < 0.3:
        text = unicodedata.normalize("NFD", text)  # some exporters write decomposed accents
    return text


def _record(rng: random.Random, fmt: str, prompt: str, response: str) -> dict[str, object]:
    if fmt == "gemini":
        return {
            "systemInstruction": {"role": "system", "parts": [{"text": SYSTEM_INSTRUCTION}]},
            "contents": [
                {"role": "user", "parts": [{"text": prompt}]},
                {"role": "model", "parts": [{"text": response}]},
            ],
        }
    if fmt == "messages":
        model_role = rng.choice(("assistant", "assistant", "model"))
        return {"messages": [
            {"role": "system", "content": SYSTEM_INSTRUCTION},
            {"role": "user", "content": prompt},
            {"role": model_role, "content": response},
        ]}
    prompt_field, response_field = {
        "input_output": ("input", "output"),
        "input_text": ("input_text", "output_text"),
        "prompt_completion": ("prompt", "completion"),
    }[fmt]
    record: dict[str, object] = {prompt_field: prompt, response_field: response}
    if rng.random() < 0.3:
        record["ticket_id"] = f"T-{rng.randrange(100000, 999999)}"
    return record


FORMAT_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("gemini", 30), ("input_output", 20), ("input_text", 20), ("prompt_completion", 15), ("messages", 15),
)
UNPARSEABLE_LINES: tuple[str, ...] = (
    '{"input": "My order #58213 never arrived and tracking says delivered", "output": "Category: shipping\\nPri',
    "--- export page 2 of 3 ---",
    "{'input': 'Cannot log in after the update', 'output': 'Category: account'}",
    '"ticket","category","priority"',
)


def generate_lines(seed: int = DEFAULT_SEED, examples: int = DEFAULT_EXAMPLES) -> list[str]:
    """The sample file's lines (without newlines), deterministic for ``seed``.

    ``examples`` distinct tickets are written, then the dirt is mixed in:
    duplicates, empty outputs, conflicting labels, unparseable and blank lines.
    """
    rng = random.Random(seed)
    formats = [name for name, weight in FORMAT_WEIGHTS for _ in range(weight)]
    tickets: list[Ticket] = []
    seen: set[str] = set()
    while len(tickets) < examples:
        ticket = make_ticket(rng)
        if ticket.text not in seen:
            seen.add(ticket.text)
            tickets.append(ticket)
    chosen = [rng.choice(formats) for _ in tickets]
    lines = [
        json.dumps(_record(rng, fmt, _messy(rng, t.text), _messy(rng, t.response)), ensure_ascii=False)
        for t, fmt in zip(tickets, chosen)
    ]
    dirt: list[str] = []
    dirt += [rng.choice(lines) for _ in range(10)]  # exact duplicate lines
    # The same example exported again in another format without a system instruction.
    without_system = [t for t, fmt in zip(tickets, chosen) if fmt not in ("gemini", "messages")]
    for ticket in rng.sample(without_system, 3):
        dirt.append(json.dumps(_record(rng, "input_text", ticket.text, ticket.response), ensure_ascii=False))
    for ticket in rng.sample(tickets, 5):  # rows exported before anyone triaged them
        empty = rng.choice(("", "   ", "\n"))
        dirt.append(json.dumps(_record(rng, rng.choice(("input_output", "input_text")), ticket.text, empty)))
    for ticket in rng.sample(without_system, 2):  # labelled twice by different agents, differently
        other = Ticket(ticket.text, rng.choice([c for c in CATEGORIES if c != ticket.category]),
                       ticket.priority, ticket.action)
        dirt.append(json.dumps(_record(rng, "prompt_completion", ticket.text, other.response), ensure_ascii=False))
    ticket = rng.choice(tickets)  # a chat export with an agent role nobody mapped
    dirt.append(json.dumps({"messages": [{"role": "customer", "content": ticket.text},
                                         {"role": "agent", "content": ticket.response}]}, ensure_ascii=False))
    dirt.append(json.dumps({"input": "", "output": rng.choice(tickets).response}))  # ticket body lost in export
    dirt += list(UNPARSEABLE_LINES)
    for line in dirt:
        lines.insert(rng.randrange(len(lines) // 10, len(lines) + 1), line)
    for _ in range(8):
        lines.insert(rng.randrange(1, len(lines)), rng.choice(("", "  ", "\t")))
    return lines


def render(seed: int = DEFAULT_SEED, examples: int = DEFAULT_EXAMPLES) -> str:
    """The sample file's text."""
    return "".join(line + "\n" for line in generate_lines(seed, examples))


def write_sample(path: Path, seed: int = DEFAULT_SEED, examples: int = DEFAULT_EXAMPLES) -> Path:
    """Write the sample to ``path`` (UTF-8, LF line endings); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render(seed, examples).encode("utf-8"))
    return path


def shipped_sample_path() -> Path:
    """Path of the shipped sample inside the installed package."""
    return Path(str(resources.files("gemini_sft") / "data" / SHIPPED_SAMPLE))


def main(argv: list[str] | None = None) -> int:
    """``python -m gemini_sft.sample_data --out PATH [--seed N] [--examples N]``."""
    parser = argparse.ArgumentParser(description="Write the customer-support triage sample dataset (JSONL).")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                        help=f"distinct tickets before the dirt is added (default {DEFAULT_EXAMPLES})")
    args = parser.parse_args(argv)
    path = write_sample(args.out, args.seed, args.examples)
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
