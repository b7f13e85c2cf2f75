"""Composing one support ticket: problem statement, details, extras, channel shape, subject, labels.

The text is built compositionally (greeting, opening by sentiment, a category problem statement,
details, extras such as PII, legal threats or prompt injections, closing and signature) so that a
TF-IDF + linear classifier lands well below 1.0 macro-F1: neighbouring categories share vocabulary,
~4% of tickets raise two topics and ~2% carry a wrong label. Every word comes from ``text/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from random import Random
from typing import Any, Sequence

from .bank import Bank
from .context import Account
from .draw import iso, weighted
from .slots import Slots, slot_generators

# Column order of every ticket file (labelled set and inbox batches).
TICKET_COLUMNS: tuple[str, ...] = (
    "ticket_id", "account_id", "customer_email", "created_at", "channel", "priority", "category", "subject", "body",
)

# Rates of the content features (per ticket).
P_BORDERLINE = 0.12  # a problem statement shared by two neighbouring categories
P_NEIGHBOUR_DETAIL = 0.22  # a detail sentence borrowed from a neighbouring category
P_TWO_TOPICS = 0.045
P_LABEL_NOISE = 0.02
P_PII = 0.12
P_INJECTION = 0.011
P_DELETION_EXTRA = 0.003
P_LONG_EMAIL = 0.3  # emails with a context paragraph (and, for some categories, a list of steps tried)
P_TYPO = 0.05
SENTIMENTS = (("furious", 0.17), ("neutral", 0.58), ("thankful", 0.25))
# a hand-typed word: letters only, never a token with digits, an e-mail address, a URL or a code
_WORD = re.compile(r"(?<!\S)[A-Za-z]{3,}(?=[,.!?;:]?(?:\s|$))")
_DELETION = re.compile(r"delete all my data|right to be forgotten")


@dataclass
class Ticket:
    """One generated ticket plus the facts the generator knows about it (not written out)."""

    row: dict[str, Any]
    text_category: str
    flags: tuple[str, ...]


def lcfirst(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and text[1].islower() and not text.startswith("I "):
        return text[0].lower() + text[1:]
    return text


def content_words(text: str, stopwords: frozenset[str]) -> frozenset[str]:
    """Lower-case words of 3+ letters (slot names included, stop words excluded), crudely stemmed."""
    words = set()
    for w in re.findall(r"[a-z0-9]{3,}", text.lower()):
        if w in stopwords:
            continue
        words.add(w[:-1] if w.endswith("s") and len(w) > 4 else w)
    return frozenset(words)


class TicketFactory:
    """Composes realistic support tickets from the text banks with one seeded ``Random``."""

    def __init__(self, bank: Bank, rng: Random, accounts: Sequence[Account]):
        self.bank = bank
        self.rng = rng
        self.accounts = list(accounts)
        self.account_weights = [bank.tickets["tickets_per_tier"][a.tier] for a in self.accounts]
        self.phrases = bank.phrases
        self.stopwords = bank.stopwords
        self.borderline = [(tuple(b["pair"]), b["problems"]) for b in bank.tickets["borderline"]]

    # ---------------------------------------------------------------- pieces
    def pick_account(self) -> Account:
        return self.rng.choices(self.accounts, weights=self.account_weights, k=1)[0]

    def _typos(self, text: str) -> str:
        rng, typos = self.rng, self.phrases["typos"]
        words = list(_WORD.finditer(text))
        if not words:
            return text
        chosen = sorted(rng.sample(words, min(len(words), rng.randint(1, 3))), key=lambda m: m.start(), reverse=True)
        for m in chosen:
            word = m.group(0)
            low = word.lower()
            if low in typos:
                new = typos[low]
                new = new[0].upper() + new[1:] if word[0].isupper() else new
            elif len(word) >= 5:
                i = rng.randint(1, len(word) - 3)
                op = rng.random()
                if op < 0.4:
                    new = word[:i] + word[i + 1] + word[i] + word[i + 2:]
                elif op < 0.75:
                    new = word[:i] + word[i + 1:]
                else:
                    new = word[:i] + word[i] + word[i:]
            else:
                continue
            text = text[: m.start()] + new + text[m.end():]
        return text

    def _priority(self, category: str, level: str, flags: set[str], account: Account) -> str:
        rng, t = self.rng, self.bank.tickets
        if "outage" in flags:
            weights = (0.0, 0.05, 0.35, 0.60)
        else:
            lv, cw = t["priority_by_level"][level], t["priority_by_category"][category]
            weights = tuple(0.6 * a + 0.4 * b for a, b in zip(lv, cw))
        idx = rng.choices(range(4), weights=weights, k=1)[0]
        bump = 0.0
        if "legal" in flags:
            bump += 0.5
        if "furious" in flags:
            bump += 0.2
        if account.is_vip or account.tier == "enterprise":
            bump += 0.15
        if rng.random() < min(bump, 0.8):
            idx = min(idx + 1, 3)
        return t["priorities"][idx]

    # ---------------------------------------------------------------- ticket
    def ticket(self, ticket_id: str, created: datetime, category: str, account: Account | None = None) -> Ticket:
        rng, bank, ph = self.rng, self.bank, self.phrases
        t = bank.tickets
        account = account or self.pick_account()
        first, last = rng.choice(account.contacts)
        email = (
            f"{first.lower()}.{last.lower()}@{account.domain}"
            if rng.random() < 0.85
            else f"{first[0].lower()}{last.lower()}@{account.domain}"
        )
        channel = weighted(rng, t["channel_weights"])
        slots = Slots()
        slots.gens = slot_generators(bank, rng, slots, created, email, first, last)
        text = bank.categories[category]
        flags: set[str] = set()
        sides: tuple[str, ...] = (category,)

        # problem statement (+ optional second topic)
        outage = t["outages"].get(category)
        if rng.random() < (outage["share"] if outage else 0.0):
            flags.add("outage")
            level, problem = "U", rng.choice(outage["problems"])
        elif rng.random() < P_BORDERLINE:
            flags.add("borderline")
            pair, problems = rng.choice([(pair, problems) for pair, problems in self.borderline if category in pair])
            level, problem = "M", rng.choice(problems)
            sides = pair  # details, ask and subject may come from either side
        else:
            level, problem = rng.choice(text.problems)
        sentences = [problem.format_map(slots)]

        n_details = weighted(rng, t["details_per_channel"][channel])
        seen: set[str] = set()
        for _ in range(n_details):
            own = rng.choice(sides)
            src = own if rng.random() >= P_NEIGHBOUR_DETAIL else rng.choice(t["neighbours"][own])
            detail = rng.choice(bank.categories[src].details)
            if detail in seen:
                continue
            seen.add(detail)
            sentences.append(detail.format_map(slots))

        if rng.random() < P_TWO_TOPICS:
            flags.add("two_topics")
            other = rng.choice(t["neighbours"][category])
            _, second = rng.choice(bank.categories[other].problems)
            second_text = rng.choice(ph["connectors"]) + lcfirst(second.format_map(slots))
            if rng.random() < 0.35:  # the secondary topic comes first: genuinely ambiguous
                sentences.insert(0, second_text[0].upper() + second_text[1:])
            else:
                sentences.append(second_text)

        sentiment = weighted(rng, SENTIMENTS)
        legal_p = 0.07 if sentiment == "furious" else 0.009
        if rng.random() < legal_p:
            flags.add("legal")
            sentiment = "furious"
            threats = ph["legal_threats"]
            if not (category == "privacy" or rng.random() < 0.3):
                threats = threats[:2] + threats[3:]  # the data-protection complaint fits privacy tickets
            sentences.append(rng.choice(threats))
        if sentiment == "furious":
            flags.add("furious")
        if rng.random() < P_PII:
            money_cat = category in ("billing", "refund")
            # card numbers and IBANs only where money changes hands
            kinds = (("phone", 0.5), ("email", 0.3), ("card", 0.15 if money_cat else 0.0), ("iban", 0.12 if money_cat else 0.0))
            kind = weighted(rng, kinds)
            flags.add(f"pii_{kind}")
            sentences.append(rng.choice([s for k, s in ph["pii_sentences"] if k == kind]).format_map(slots))
        if category != "privacy" and rng.random() < P_DELETION_EXTRA:
            flags.add("deletion")
            sentences.append(rng.choice(ph["deletion_extras"]))
        if rng.random() < P_INJECTION:
            flags.add("injection")
            sentences.append(rng.choice(ph["injections"]).format_map(slots))
        if rng.random() < 0.55:
            sentences.append(rng.choice(bank.categories[rng.choice(sides)].asks))

        body = self._assemble(channel, sentiment, sentences, slots, account, first, last, category)
        if rng.random() < P_TYPO:
            flags.add("typo")
            body = self._typos(body)
        priority = self._priority(category, level, flags, account)
        subject = self._subject(channel, rng.choice(sides), priority, sentences, slots, problem)

        label = category
        if rng.random() < P_LABEL_NOISE:
            flags.add("label_noise")
            if rng.random() < 0.75:
                label = rng.choice(t["neighbours"][category])
            else:
                label = rng.choice([c for c in bank.labels if c != category])
        if category == "privacy" and _DELETION.search(body):
            flags.add("deletion")

        row = {
            "ticket_id": ticket_id,
            "account_id": account.account_id,
            "customer_email": email,
            "created_at": iso(created),
            "channel": channel,
            "priority": priority,
            "category": label,
            "subject": subject,
            "body": body,
        }
        return Ticket(row=row, text_category=category, flags=tuple(sorted(flags)))

    def _matching_subject(self, category: str, problem: str) -> str:
        """A subject template of the category that shares the most words with the problem template."""
        subjects = self.bank.categories[category].subjects
        if self.rng.random() < 0.15:
            return self.rng.choice(subjects)
        words = content_words(problem, self.stopwords)
        scores = [len(words & content_words(s, self.stopwords)) for s in subjects]
        best = max(scores)
        if best == 0:
            return self.rng.choice(subjects)
        return self.rng.choice([s for s, sc in zip(subjects, scores) if sc == best])

    def _subject(self, channel: str, category: str, priority: str, sentences: list[str], slots: Slots, problem: str) -> str:
        rng, ph = self.rng, self.phrases
        prefix = ph["subject_prefixes"]
        if channel == "chat" and rng.random() < 0.5:
            first = sentences[0]
            return prefix["chat"] + (first if len(first) <= 60 else first[:57].rstrip() + "...")
        if channel == "social" and rng.random() < 0.5:
            return rng.choice(ph["social_subjects"])
        if rng.random() < 0.08:
            subject = rng.choice(ph["generic_subjects"])
        else:
            subject = self._matching_subject(category, problem).format_map(slots)
        r = rng.random()
        if priority == "urgent" and r < 0.3:
            subject = prefix["urgent"] + subject
        elif r < 0.07:
            subject = prefix["reply"] + subject
        elif r < 0.09:
            subject = prefix["forward"] + subject
        elif r < 0.17:
            subject = subject.lower()
        return subject

    def _assemble(
        self, channel: str, sentiment: str, sentences: list[str], slots: Slots,
        account: Account, first: str, last: str, category: str,
    ) -> str:
        rng, ph = self.rng, self.phrases
        opening = rng.choice(ph["openings"][sentiment])
        closing = rng.choice(ph["closings"][sentiment])
        company = account.name
        if channel == "chat":
            parts = list(sentences)
            if rng.random() < 0.5:
                parts.insert(0, rng.choice(ph["chat_greetings"]))
            if sentiment != "neutral" and rng.random() < 0.4:
                parts.insert(1 if len(parts) > 1 else 0, opening)
            sep = "\n" if rng.random() < 0.3 else " "
            text = sep.join(parts)
            if rng.random() < 0.35:
                text = text.lower().rstrip(".")
            return text
        if channel == "social":
            tag = ph["social_furious_tag"] if sentiment == "furious" and rng.random() < 0.5 else ""
            return ph["social_message"].format(text=" ".join(sentences), tag=tag)
        if channel == "phone":
            note = rng.choice(ph["phone_notes"])
            return ph["phone_message"].format(first=first, last=last, company=company, mood=ph["phone_moods"][sentiment],
                                              said=" ".join(sentences), note=note)
        if channel == "web":
            text = " ".join(sentences)
            if rng.random() < 0.4:
                text = opening + " " + text
            return ph["web_message"].format(first=first, last=last, company=company, text=text)
        return self._email(sentiment, sentences, slots, opening, closing, company, first, last, category)

    def _email(
        self, sentiment: str, sentences: list[str], slots: Slots, opening: str, closing: str,
        company: str, first: str, last: str, category: str,
    ) -> str:
        rng, ph = self.rng, self.phrases
        if rng.random() < 0.1:  # one-liner
            return sentences[0]
        paras: list[str] = []
        if rng.random() < 0.85:
            paras.append(rng.choice(ph["greetings"]).format_map(slots))
        open_p = {"furious": 0.8, "thankful": 0.6, "neutral": 0.35}[sentiment]
        body_sents = ([opening] if rng.random() < open_p else []) + sentences
        if rng.random() < P_LONG_EMAIL:
            k = rng.randint(1, 2)
            paras.append(" ".join(c.format_map(slots) for c in rng.sample(ph["context_sentences"], k)))
        if len(body_sents) >= 4 and rng.random() < 0.6:
            cut = rng.randint(2, len(body_sents) - 1)
            paras.append(" ".join(body_sents[:cut]))
            paras.append(" ".join(body_sents[cut:]))
        else:
            paras.append(" ".join(body_sents))
        tried = ph["tried_steps"]
        if category in tried and rng.random() < 0.25:
            steps = rng.sample(tried[category], rng.randint(2, 4))
            intro = rng.choice(ph["tried_steps_intros"])
            paras.append(intro + "\n" + "\n".join("- " + st.format_map(slots) for st in steps))
        sig_style = rng.random()
        if sig_style < 0.3:
            sig = f"{closing}\n{first}"
        elif sig_style < 0.6:
            sig = f"{closing}\n{first} {last}"
        elif sig_style < 0.85:
            sig = f"{closing}\n{first} {last}\n{company}"
        else:
            sig = closing
        paras.append(sig)
        text = "\n\n".join(paras)
        if rng.random() < 0.05:
            text += "\n\n" + ph["email_footer"]
        if rng.random() < 0.08:
            quoted = rng.choice(ph["quoted_replies"]).format_map(slots)
            text += "\n\n" + ph["quoted_reply_header"].format(date=slots["date"]) + "\n" + "\n".join(
                "> " + line if line else ">" for line in quoted.split("\n")
            )
        return text


def business_time(rng: Random, day: datetime) -> datetime:
    hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 10, 9, 8, 6, 4, 3, 2, 2, 1], k=1)[0]
    return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))


def build_labelled_tickets(bank: Bank, accounts: Sequence[Account], seed: int, n: int, first_id: int) -> list[Ticket]:
    """Clean labelled tickets over 2026-09-01 .. 2026-11-22, ids in time order."""
    rng = Random(f"{seed}:labelled")
    factory = TicketFactory(bank, rng, accounts)
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    days = [start + timedelta(days=i) for i in range(83)]  # through 2026-11-22
    day_weights = [0.45 if d.weekday() >= 5 else 1.0 for d in days]
    times = sorted(business_time(rng, rng.choices(days, weights=day_weights, k=1)[0]) for _ in range(n))
    cats = [weighted(rng, bank.tickets["weights"]) for _ in range(n)]
    return [factory.ticket(f"T-{first_id + i}", times[i], cats[i]) for i in range(n)]
