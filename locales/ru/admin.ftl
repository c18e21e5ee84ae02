## Аналитика для администраторов: /stats /sources /managers /dropoff /funnel /trend /export, дайджест, меню команд

admin-only = ⛔ Эта команда доступна только администраторам.
admin-period-bad = ⚠️ Не удалось распознать период «{ $text }». Примеры: { $example }
admin-period-all = всё время
admin-dur-days = { $n } дн
admin-dur-hours = { $n } ч
admin-dur-minutes = { $n } мин
admin-dur-seconds = { $n } с
admin-working = ⏳ Считаю…

stats-title = 📊 <b>Воронка</b> · { $period }
stats-empty = За этот период новых заявок не было.
stats-leads = Новых заявок: <b>{ $count }</b>
stats-row-first = { $stage }: <b>{ $count }</b>
stats-row = { $stage }: <b>{ $count }</b> · { $conversion } от предыдущего этапа · { $share } от всех
stats-overall = 🏁 Общая конверсия в «{ $won }»: <b>{ $percent }</b>
stats-leak = 🔻 Самая большая утечка: { $from } → { $to }: −{ $lost } ({ $percent })
stats-no-leak = 🔻 Ни один этап не теряет заявки.
stats-side-row = { $stage }: { $count }
stats-lost-title = ❌ Потеряно: <b>{ $count }</b>
stats-reason-row = • { $reason }: { $count } ({ $percent })
stats-median-title = ⏱ Медианное время на этапе (для заявок, которые пошли дальше)
stats-median-row = { $stage }: { $duration } (n = { $count })
stats-median-none = { $stage }: —
stats-approx = ≈ оценка по интервалам шириной 20 %: слишком много записей, чтобы перебрать каждую.
stats-pipeline-title = 💼 Взвешенная воронка (открытые заявки × вероятность этапа)
stats-pipeline-deals = Ожидаемое число сделок: <b>{ $deals }</b> из { $open } открытых заявок
stats-pipeline-amount = Ожидаемая сумма: <b>{ $amount }</b> (сумма указана для { $with_amount } из { $open })
stats-note-skip = ℹ️ Конверсия = дошли до этого этапа ÷ дошли до предыдущего. Заявка, перескочившая этап, учитывается только там, где действительно была, поэтому этап после пропущенного может показать больше 100%.

sources-title = 📣 <b>Источники</b> · { $period }
sources-row = <b>{ $source }</b>: заявок { $leads } → успешных { $won } ({ $overall }) · потеряно { $lost }
sources-leak = 🔻 { $from } → { $to }: −{ $lost } ({ $percent })
sources-more = …и ещё { $count } источников (смотрите /export).
sources-legend = Этапы: { $chain }

managers-title = 👥 <b>Менеджеры</b> · { $period }
managers-empty = За этот период менеджеры не брали заявок.
managers-row = <b>{ $name }</b>: взято { $taken } · успешных { $won } · потеряно { $lost } · доля выигранных { $rate }
managers-times = ⏱ от передачи до «Взять»: { $take } · до первого перевода: { $move }
managers-note = Доля выигранных = успешные ÷ (успешные + потерянные), только закрытые сделки. Время — медиана.

dropoff-title = 🚪 <b>Где клиенты бросают диалог</b> · { $period }
dropoff-empty = За этот период диалог никто не начинал.
dropoff-started = Начали: <b>{ $count }</b> · отказались от согласия: { $declined } · завершили: { $completed } ({ $percent })
dropoff-row = { $step }: дошли { $count } ({ $percent }) · остановились здесь: { $stopped }
dropoff-summary = Подтверждение
dropoff-worst = 🔻 Чаще всего останавливаются на шаге: { $step } ({ $count })
dropoff-note = ℹ️ «Дошли» — добрались как минимум до этого шага (вопрос, скрытый предыдущими ответами, считается пройденным); «остановились здесь» — последний вопрос, который человек видел, прежде чем замолчать.

chart-funnel-title = Воронка · { $period }
chart-trend-title = Заявки за { $unit } · { $period }
chart-unit-day = день
chart-unit-month = месяц
chart-leads = Заявки
chart-won = Успешные
chart-of-previous = % — от предыдущего этапа
chart-empty = За этот период заявок нет
funnel-caption = 📊 Воронка · { $period }
trend-caption = 📈 Заявки · { $period }

export-empty = За этот период новых заявок не было.
export-caption = 📤 Заявки · { $period }: строк { $count }
export-history-caption = 🕓 История этапов · { $period }: строк { $count }
export-xlsx-caption = 📗 То же в виде таблицы Excel
export-zip-caption = 🗜 Заявки и история этапов · { $period } (в архиве: иначе слишком большие для Telegram)
export-too-big = ⚠️ Выгрузка превышает лимит Telegram (50 МБ) даже в архиве. Выберите период короче, например /export 30d.
export-xlsx-skipped = ℹ️ Строк слишком много для удобной таблицы, поэтому созданы только файлы CSV.
export-sheet-leads = Заявки
export-sheet-history = История этапов
export-yes = да
export-no = нет
export-system = система
export-outcome-won = успешная
export-outcome-lost = потеряна
export-event-created = создана
export-event-stage = смена этапа
export-event-handoff = передана менеджерам
export-event-assign = взята менеджером
export-col-id = ID
export-col-created = Создана
export-col-source = Источник
export-col-name = Имя
export-col-phone = Телефон
export-col-verified = Телефон подтверждён
export-col-email = Email
export-col-username = Username
export-col-answers = Ответы
export-col-score = Балл
export-col-band = Категория
export-col-stage = Этап
export-col-manager = Менеджер
export-col-outcome = Результат
export-col-lost_reason = Причина потери
export-col-amount = Сумма
export-col-closed = Закрыта
export-col-h-lead = ID заявки
export-col-h-at = Время
export-col-h-event = Событие
export-col-h-from = С этапа
export-col-h-to = На этап
export-col-h-actor = Кто
export-col-h-reason = Причина

digest-title-daily = ☀️ <b>Ежедневная сводка</b> · { $period }
digest-title-weekly = 📅 <b>Недельная сводка</b> · { $period }
digest-body = Новых заявок: <b>{ $leads }</b> · успешных: { $won } · потеряно: { $lost }
digest-more = Подробнее: { $command }

# the bot removed from / added back to the staff group (a private message to every admin)
admin-staff-chat-removed = ⚠️ Бота удалили из группы менеджеров. Новые заявки ждут в очереди, пока его не добавят снова.
admin-staff-chat-back = ✅ Бот снова в группе менеджеров. Заявки, которые ждали, публикуются сейчас.

cmd-start = Начать или обновить заявку
cmd-help = Как работает этот бот
cmd-manager = Связаться с менеджером
cmd-language = Сменить язык
cmd-mydata = Что мы о вас храним
cmd-forget = Удалить ваши данные
cmd-cancel = Отменить текущие вопросы
cmd-restart = Начать вопросы заново
cmd-lead = Открыть карточку заявки: /lead 123
cmd-mine = Мои открытые заявки
cmd-note = Добавить заметку (ответом на карточку)
cmd-amount = Указать сумму сделки (ответом на карточку)
cmd-staff-help = Команды для менеджеров
cmd-stats = Показатели воронки: /stats 30d
cmd-sources = Конверсия по источникам
cmd-managers = Менеджеры: взято, выиграно, скорость
cmd-dropoff = Где клиенты бросают диалог
cmd-funnel = График воронки
cmd-trend = График заявок по дням
cmd-export = Выгрузить заявки (CSV, XLSX)
