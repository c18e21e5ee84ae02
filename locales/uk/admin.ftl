## Аналітика для адміністраторів: /stats /sources /managers /dropoff /funnel /trend /export, дайджест, меню команд

admin-only = ⛔ Ця команда доступна лише адміністраторам.
admin-period-bad = ⚠️ Не вдалося розпізнати період «{ $text }». Приклади: { $example }
admin-period-all = увесь час
admin-dur-days = { $n } д
admin-dur-hours = { $n } год
admin-dur-minutes = { $n } хв
admin-dur-seconds = { $n } с
admin-working = ⏳ Рахую…

stats-title = 📊 <b>Воронка</b> · { $period }
stats-empty = За цей період нових заявок не було.
stats-leads = Нових заявок: <b>{ $count }</b>
stats-row-first = { $stage }: <b>{ $count }</b>
stats-row = { $stage }: <b>{ $count }</b> · { $conversion } від попереднього етапу · { $share } від усіх
stats-overall = 🏁 Загальна конверсія в «{ $won }»: <b>{ $percent }</b>
stats-leak = 🔻 Найбільший відтік: { $from } → { $to }: −{ $lost } ({ $percent })
stats-no-leak = 🔻 Жоден етап не втрачає заявок.
stats-side-row = { $stage }: { $count }
stats-lost-title = ❌ Втрачено: <b>{ $count }</b>
stats-reason-row = • { $reason }: { $count } ({ $percent })
stats-median-title = ⏱ Медіанний час на етапі (для заявок, що пішли далі)
stats-median-row = { $stage }: { $duration } (n = { $count })
stats-median-none = { $stage }: —
stats-approx = ≈ оцінка за інтервалами шириною 20 %: надто багато записів, щоб перебрати кожен.
stats-pipeline-title = 💼 Зважена воронка (відкриті заявки × ймовірність етапу)
stats-pipeline-deals = Очікувана кількість угод: <b>{ $deals }</b> з { $open } відкритих заявок
stats-pipeline-amount = Очікувана сума: <b>{ $amount }</b> (суму вказано для { $with_amount } з { $open })
stats-note-skip = ℹ️ Конверсія = дійшли до цього етапу ÷ дійшли до попереднього. Заявка, що перескочила етап, враховується лише там, де справді побувала, тому етап після пропущеного може показати понад 100%.

sources-title = 📣 <b>Джерела</b> · { $period }
sources-row = <b>{ $source }</b>: заявок { $leads } → успішних { $won } ({ $overall }) · втрачено { $lost }
sources-leak = 🔻 { $from } → { $to }: −{ $lost } ({ $percent })
sources-more = …і ще { $count } джерел (дивіться /export).
sources-legend = Етапи: { $chain }

managers-title = 👥 <b>Менеджери</b> · { $period }
managers-empty = За цей період менеджери не брали заявок.
managers-row = <b>{ $name }</b>: узято { $taken } · успішних { $won } · втрачено { $lost } · частка виграних { $rate }
managers-times = ⏱ від передачі до «Взяти»: { $take } · до першого переведення: { $move }
managers-note = Частка виграних = успішні ÷ (успішні + втрачені), лише закриті угоди. Час — медіана.

dropoff-title = 🚪 <b>Де клієнти кидають діалог</b> · { $period }
dropoff-empty = За цей період діалог ніхто не починав.
dropoff-started = Почали: <b>{ $count }</b> · відмовилися від згоди: { $declined } · завершили: { $completed } ({ $percent })
dropoff-row = { $step }: дійшли { $count } ({ $percent }) · зупинилися тут: { $stopped }
dropoff-summary = Підтвердження
dropoff-worst = 🔻 Найчастіше зупиняються на кроці: { $step } ({ $count })
dropoff-note = ℹ️ «Дійшли» — дісталися щонайменше до цього кроку (запитання, приховане попередніми відповідями, вважається пройденим); «зупинилися тут» — останнє запитання, яке людина бачила перед тим, як замовкнути.

chart-funnel-title = Воронка · { $period }
chart-trend-title = Заявки за { $unit } · { $period }
chart-unit-day = день
chart-unit-month = місяць
chart-leads = Заявки
chart-won = Успішні
chart-of-previous = % — від попереднього етапу
chart-empty = За цей період заявок немає
funnel-caption = 📊 Воронка · { $period }
trend-caption = 📈 Заявки · { $period }

export-empty = За цей період нових заявок не було.
export-caption = 📤 Заявки · { $period }: рядків { $count }
export-history-caption = 🕓 Історія етапів · { $period }: рядків { $count }
export-xlsx-caption = 📗 Те саме у вигляді таблиці Excel
export-zip-caption = 🗜 Заявки та історія етапів · { $period } (в архіві: інакше завеликі для Telegram)
export-too-big = ⚠️ Вивантаження перевищує ліміт Telegram (50 МБ) навіть в архіві. Оберіть коротший період, наприклад /export 30d.
export-xlsx-skipped = ℹ️ Рядків забагато для зручної таблиці, тому створено лише файли CSV.
export-sheet-leads = Заявки
export-sheet-history = Історія етапів
export-yes = так
export-no = ні
export-system = система
export-outcome-won = успішна
export-outcome-lost = втрачена
export-event-created = створено
export-event-stage = зміна етапу
export-event-handoff = передано менеджерам
export-event-assign = узято менеджером
export-col-id = ID
export-col-created = Створено
export-col-source = Джерело
export-col-name = Ім'я
export-col-phone = Телефон
export-col-verified = Телефон підтверджено
export-col-email = Email
export-col-username = Username
export-col-answers = Відповіді
export-col-score = Бал
export-col-band = Категорія
export-col-stage = Етап
export-col-manager = Менеджер
export-col-outcome = Результат
export-col-lost_reason = Причина втрати
export-col-amount = Сума
export-col-closed = Закрито
export-col-h-lead = ID заявки
export-col-h-at = Час
export-col-h-event = Подія
export-col-h-from = З етапу
export-col-h-to = На етап
export-col-h-actor = Хто
export-col-h-reason = Причина

digest-title-daily = ☀️ <b>Щоденний підсумок</b> · { $period }
digest-title-weekly = 📅 <b>Тижневий підсумок</b> · { $period }
digest-body = Нових заявок: <b>{ $leads }</b> · успішних: { $won } · втрачено: { $lost }
digest-more = Докладніше: { $command }

# the bot removed from / added back to the staff group (a private message to every admin)
admin-staff-chat-removed = ⚠️ Бота видалили з групи менеджерів. Нові заявки чекають у черзі, доки його не додадуть знову.
admin-staff-chat-back = ✅ Бот знову в групі менеджерів. Заявки, що чекали, публікуються зараз.

cmd-start = Почати або оновити заявку
cmd-help = Як працює цей бот
cmd-manager = Зв'язатися з менеджером
cmd-language = Змінити мову
cmd-mydata = Що ми про вас зберігаємо
cmd-forget = Видалити ваші дані
cmd-cancel = Скасувати поточні запитання
cmd-restart = Почати запитання спочатку
cmd-lead = Відкрити картку заявки: /lead 123
cmd-mine = Мої відкриті заявки
cmd-note = Додати нотатку (відповіддю на картку)
cmd-amount = Вказати суму угоди (відповіддю на картку)
cmd-staff-help = Команди для менеджерів
cmd-stats = Показники воронки: /stats 30d
cmd-sources = Конверсія за джерелами
cmd-managers = Менеджери: узято, виграно, швидкість
cmd-dropoff = Де клієнти кидають діалог
cmd-funnel = Графік воронки
cmd-trend = Графік заявок за днями
cmd-export = Вивантажити заявки (CSV, XLSX)
