# The staff card (bot/cards.py) and the staff chat (handlers/staff.py).

## card
card-title = 📋 <b>Lead #{ $id }</b>
card-why = ❗ { $reason }
card-why-qualified = Qualified by score
card-why-manager = The prospect asked for a manager
card-why-question = The prospect asked a question
card-why-signal = Signal: { $signal }
card-why-unknown = Handed off to managers
card-anonymized = 🕶 Personal data erased at the prospect's request.
card-none = —
card-name = 👤 { $name }
card-phone-verified = 📞 { $phone } ✅ verified
card-phone-unverified = 📞 { $phone } ⚠️ not verified
card-email = ✉️ { $email }
card-telegram = 💬 { $link }
card-telegram-profile = Telegram profile
card-source = 🔗 Source: { $source }
card-answers-title = <b>Answers</b>
card-answer = • { $title }: { $value }
card-comment = • { $title }: <i>{ $value }</i>
card-score = 📊 Score <b>{ $score }</b> · { $band } (fit { $fit }, intent { $intent })
card-rule = { "   " }· { $rule }: { $points }
card-rule-phone-verified = Verified phone
card-rule-phone-unverified = Phone (not verified)
card-rule-email = Email given
card-rule-source = Source: { $source }
card-rule-signal = Signal: { $signal }
card-signal-quick-answers = Quick answers
card-stage = 📍 Stage: <b>{ $stage }</b>
card-sla = ⏱ Next step due by { $deadline }
card-sla-overdue = ⏰ <b>Overdue</b> since { $deadline }
card-lost-reason = ✖️ Reason: { $reason }
card-playbook = 📘 <i>{ $text }</i>
card-manager = 🧑‍💼 Manager: { $name }
card-manager-none = 🧑‍💼 Manager: <i>not assigned</i>
card-amount = 💰 Amount: { $amount }
card-created = 🕒 Created: { $at }
card-history-title = <b>History</b>
card-history-entry = { $at } · { $who }: { $what }
card-more = …
card-actor-system = 🤖 bot
card-actor-prospect = 👤 prospect
card-event-created = request created (source: { $source })
card-event-stage = { $source } → { $target }
card-event-assign = took the lead
card-event-handoff = handed to managers: { $reason }
card-event-signal = { $signal }
card-event-note = 📝 { $text }
card-event-amount = amount { $amount }
card-event-relay-in = wrote: { $text }
card-event-relay-out = replied: { $text }
card-event-erased = personal data erased
card-event-unreachable = ⛔ the prospect blocked the bot
card-event-reachable = ✅ the prospect unblocked the bot

## card buttons
card-btn-take = 🙋 Take
card-btn-move = ➡️ { $stage }
card-btn-won = 🏆 { $stage }
card-btn-lost = ✖️ { $stage }
card-btn-back = ⬅️ Back

## answers to card buttons (plain text, at most 200 characters)
staff-not-staff-chat = These buttons and commands work only in the staff chat.
staff-not-manager = Only managers can do this.
staff-lead-not-found = Lead not found.
staff-stale = The card is out of date: the lead is now in “{ $stage }”. The card will be refreshed.
staff-taken = ✅ The lead is yours.
staff-already-taken = Already taken by { $name }.
staff-already-yours = The lead is already yours.
staff-closed = The lead is already closed ({ $stage }).
staff-moved = Moved to “{ $stage }”.
staff-already-moved = Already moved to “{ $stage }” by { $name }.
staff-by-bot = the bot
staff-not-allowed = Not allowed: a lead in “{ $stage }” cannot move to “{ $target }”.
staff-needs-reason = Pick a reason to mark the lead as lost.
staff-bad-reason = Unknown reason. Post the card again with /lead and the lead number.
staff-bad-button = This button is not valid. Post the card again with /lead and the lead number.
staff-pick-reason = Why was the lead lost?
staff-back = OK

## staff chat commands
staff-reply-to-card = Send this command as a reply to a lead card.
staff-note-empty = Write the note after the command, e.g. /note called, will send the offer on Monday
staff-note-saved = 📝 Note added to lead #{ $id }.
staff-amount-set = 💰 Amount of lead #{ $id }: { $amount }
staff-amount-empty = Write the amount after the command, e.g. /amount 12000 or /amount 12 000.50
staff-amount-garbage = That is not an amount. Examples: /amount 12000, /amount 12 000, /amount 12,000.50
staff-amount-negative = The amount cannot be negative.
staff-amount-too-large = The amount is too large.
staff-lead-usage = Usage: /lead 42 (the lead number)
staff-mine-empty = You have no open leads.
staff-mine-title = <b>Your open leads ({ $count })</b>
staff-mine-row = #{ $id } · { $name } · { $stage } · score { $score }

## relays between the prospect and the managers
staff-relay-in =
    💬 <b>Lead #{ $id } · { $name }</b>
    { $text }
staff-manager-requested = 🔔 The prospect of lead #{ $id } asks for a manager.
staff-relay-sent = ✅ Sent to the prospect.
staff-relay-text-only = Only text messages can be relayed to the prospect.
staff-relay-anonymized = Not sent: the prospect erased their data.
staff-relay-unreachable = Not sent: the prospect has blocked the bot.
staff-relay-no-chat = Not sent: the prospect's chat is unknown.
# shown to the prospect (in their language)
staff-to-prospect =
    💬 <b>{ $manager }</b>, manager:
    { $text }
