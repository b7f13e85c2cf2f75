"""The reference the support_triage reply template is proven against: ``draft_text()`` of the
single-family code it replaces (``resources/providers/local.py`` at the commit before the platform
refactoring), pasted with its constants; only the article gist now comes from the draft module,
where the old ``_article_gist`` moved unchanged."""

from __future__ import annotations

from resources.providers.local.draft import gist

OLD_CATEGORY_LINES = {
    "billing": "Thank you for contacting us about a billing question on your account. We have reviewed the charge "
               "and invoice details on our side.",
    "technical_issue": "Thank you for reporting this technical issue. We are sorry the error is getting in the way "
                       "of your work, and we are looking into it.",
    "account_access": "Thank you for contacting us about access to your account. We understand how disruptive it is "
                      "when you cannot log in.",
    "shipping": "Thank you for contacting us about your order's shipping and delivery. We have checked the shipment "
                "and carrier tracking on our side.",
    "refund": "Thank you for contacting us about a refund. We have reviewed your request against our refund policy.",
    "product_question": "Thank you for your question about our product and its features. Here is what we can share.",
    "security": "Thank you for reporting this security concern. We take it seriously, and our security team is "
                "reviewing it.",
    "privacy": "Thank you for your privacy request about your personal data. We handle these requests under GDPR "
               "and our privacy policy.",
}
OLD_GENERIC_LINE = "Thank you for contacting our support team. We have read your message and are looking into it."
OLD_TIER_LINES = {
    "enterprise": "As an Enterprise customer, your dedicated customer success manager is copied and will follow up.",
    "business": "As a Business plan customer, your request is handled by our priority support queue.",
    "pro": "Your Pro plan includes email and chat support, and we will keep you updated here.",
    "free": "You can also find answers any time in our help centre and community forum.",
}
OLD_VIP_LINE = "Because this account is a priority account for us, a senior support engineer owns this ticket."
OLD_ARTICLE_INTRO = "These help-centre articles explain the next steps:"
OLD_NO_ARTICLE_LINE = "A support specialist will follow up with the exact steps for your case."
OLD_CLOSING = ("If anything is still unclear, reply to this message and we will pick it up.\n\n"
               "Kind regards,\nCustomer Support")


def old_draft_text(account, articles, category):
    """``draft_text(ticket, category)`` of the old provider (ticket.account, ticket.articles)."""
    name = (account.name or "").strip() if account is not None else ""
    lines = [f"Hello {name} team," if name else "Hello,", ""]
    lines.append(OLD_CATEGORY_LINES.get(category or "", OLD_GENERIC_LINE))
    same = [a for a in articles if category and a.category == category]
    articles = (same or list(articles))[:3]
    cited = []
    if articles:
        lines += ["", OLD_ARTICLE_INTRO]
        for a in articles:
            ref = f"{a.title} ({a.url})" if a.url else a.title
            g = gist(a.body)  # the old _article_gist, moved to the draft module unchanged
            lines.append(f"- {ref}: {g}" if g else f"- {ref}")
            cited.append(a.article_id)
    else:
        lines += ["", OLD_NO_ARTICLE_LINE]
    extra = []
    if account is not None and account.tier and account.tier.lower() in OLD_TIER_LINES:
        extra.append(OLD_TIER_LINES[account.tier.lower()])
    if account is not None and account.is_vip:
        extra.append(OLD_VIP_LINE)
    if extra:
        lines += ["", " ".join(extra)]
    lines += ["", OLD_CLOSING]
    return "\n".join(lines), cited
