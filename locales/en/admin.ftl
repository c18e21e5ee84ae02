## Admin analytics: /stats /sources /managers /dropoff /funnel /trend /export, the digest, command menus

admin-only = ⛔ This command is for administrators only.
admin-period-bad = ⚠️ I can't read the period “{ $text }”. Use one of: { $example }
admin-period-all = all time
admin-dur-days = { $n } d
admin-dur-hours = { $n } h
admin-dur-minutes = { $n } min
admin-dur-seconds = { $n } s
admin-working = ⏳ Counting…

stats-title = 📊 <b>Funnel</b> · { $period }
stats-empty = No leads were created in this period.
stats-leads = Leads created: <b>{ $count }</b>
stats-row-first = { $stage }: <b>{ $count }</b>
stats-row = { $stage }: <b>{ $count }</b> · { $conversion } of the previous step · { $share } of all
stats-overall = 🏁 Overall conversion to { $won }: <b>{ $percent }</b>
stats-leak = 🔻 Biggest leak: { $from } → { $to }: −{ $lost } ({ $percent })
stats-no-leak = 🔻 No step loses leads.
stats-side-row = { $stage }: { $count }
stats-lost-title = ❌ Lost: <b>{ $count }</b>
stats-reason-row = • { $reason }: { $count } ({ $percent })
stats-median-title = ⏱ Median time in stage (leads that moved on)
stats-median-row = { $stage }: { $duration } (n = { $count })
stats-median-none = { $stage }: —
stats-approx = ≈ estimated from 20 % wide buckets: too many stays to read one by one.
stats-pipeline-title = 💼 Weighted pipeline (open leads × stage probability)
stats-pipeline-deals = Expected deals: <b>{ $deals }</b> of { $open } open leads
stats-pipeline-amount = Expected amount: <b>{ $amount }</b> (amount entered for { $with_amount } of { $open })
stats-note-skip = ℹ️ Conversion = reached this stage ÷ reached the previous one. A lead that skipped a stage counts only at the stages it really reached, so the step after a skipped stage can show over 100%.

sources-title = 📣 <b>Sources</b> · { $period }
sources-row = <b>{ $source }</b>: leads { $leads } → won { $won } ({ $overall }) · lost { $lost }
sources-leak = 🔻 { $from } → { $to }: −{ $lost } ({ $percent })
sources-more = …and { $count } more sources (see /export).
sources-legend = Chain: { $chain }

managers-title = 👥 <b>Managers</b> · { $period }
managers-empty = No manager took a lead created in this period.
managers-row = <b>{ $name }</b>: taken { $taken } · won { $won } · lost { $lost } · win rate { $rate }
managers-times = ⏱ handoff → Take: { $take } · handoff → first move: { $move }
managers-note = Win rate = won ÷ (won + lost), the closed deals only. Times are medians.

dropoff-title = 🚪 <b>Dialogue drop-off</b> · { $period }
dropoff-empty = Nobody started the dialogue in this period.
dropoff-started = Started: <b>{ $count }</b> · declined consent: { $declined } · finished: { $completed } ({ $percent })
dropoff-row = { $step }: reached { $count } ({ $percent }) · stopped here: { $stopped }
dropoff-summary = Confirmation
dropoff-worst = 🔻 Most prospects stop at: { $step } ({ $count })
dropoff-note = ℹ️ “Reached” = got at least this far (a question hidden by earlier answers counts as passed); “stopped here” = the last question they saw before going quiet.

chart-funnel-title = Funnel · { $period }
chart-trend-title = Leads per { $unit } · { $period }
chart-unit-day = day
chart-unit-month = month
chart-leads = Leads
chart-won = Won
chart-of-previous = % = of the previous stage
chart-empty = No leads in this period
funnel-caption = 📊 Funnel · { $period }
trend-caption = 📈 Leads · { $period }

export-empty = No leads were created in this period.
export-caption = 📤 Leads · { $period }: { $count } rows
export-history-caption = 🕓 Stage history · { $period }: { $count } rows
export-xlsx-caption = 📗 The same as a spreadsheet
export-zip-caption = 🗜 Leads and stage history · { $period } (zipped: too large for Telegram otherwise)
export-too-big = ⚠️ This export is larger than Telegram allows (50 MB) even zipped. Please choose a shorter period, e.g. /export 30d.
export-xlsx-skipped = ℹ️ Too many rows for a comfortable spreadsheet, so only CSV files were made.
export-sheet-leads = Leads
export-sheet-history = Stage history
export-yes = yes
export-no = no
export-system = system
export-outcome-won = won
export-outcome-lost = lost
export-event-created = created
export-event-stage = stage change
export-event-handoff = handed to managers
export-event-assign = taken by a manager
export-col-id = ID
export-col-created = Created
export-col-source = Source
export-col-name = Name
export-col-phone = Phone
export-col-verified = Phone verified
export-col-email = Email
export-col-username = Username
export-col-answers = Answers
export-col-score = Score
export-col-band = Band
export-col-stage = Stage
export-col-manager = Manager
export-col-outcome = Won/lost
export-col-lost_reason = Lost reason
export-col-amount = Amount
export-col-closed = Closed
export-col-h-lead = Lead ID
export-col-h-at = Time
export-col-h-event = Event
export-col-h-from = From stage
export-col-h-to = To stage
export-col-h-actor = By
export-col-h-reason = Reason

digest-title-daily = ☀️ <b>Daily digest</b> · { $period }
digest-title-weekly = 📅 <b>Weekly digest</b> · { $period }
digest-body = New leads: <b>{ $leads }</b> · won: { $won } · lost: { $lost }
digest-more = Details: { $command }

# the bot removed from / added back to the staff group (a private message to every admin)
admin-staff-chat-removed = ⚠️ The bot was removed from the staff group. New leads wait in the queue until it is added back.
admin-staff-chat-back = ✅ The bot is back in the staff group. The leads that waited are being posted now.

cmd-start = Start or update your request
cmd-help = How this bot works
cmd-manager = Talk to a manager
cmd-language = Change the language
cmd-mydata = See what we store about you
cmd-forget = Erase your data
cmd-cancel = Cancel the current questions
cmd-restart = Start the questions again
cmd-lead = Open a lead card: /lead 123
cmd-mine = My open leads
cmd-note = Add a note to a lead (reply to its card)
cmd-amount = Set a deal amount (reply to its card)
cmd-staff-help = Commands for managers
cmd-stats = Funnel figures: /stats 30d
cmd-sources = Conversion by source
cmd-managers = Managers: taken, won, speed
cmd-dropoff = Where prospects leave the dialogue
cmd-funnel = Funnel chart
cmd-trend = Leads per day chart
cmd-export = Export leads (CSV, XLSX)
