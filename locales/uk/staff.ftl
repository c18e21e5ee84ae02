# Картка заявки для менеджерів (bot/cards.py) і робочий чат (handlers/staff.py).

## картка
card-title = 📋 <b>Заявка #{ $id }</b>
card-why = ❗ { $reason }
card-why-qualified = Кваліфікована за балами
card-why-manager = Клієнт попросив менеджера
card-why-question = Клієнт поставив запитання
card-why-signal = Сигнал: { $signal }
card-why-unknown = Передано менеджерам
card-anonymized = 🕶 Персональні дані видалено на прохання клієнта.
card-none = —
card-name = 👤 { $name }
card-phone-verified = 📞 { $phone } ✅ підтверджено
card-phone-unverified = 📞 { $phone } ⚠️ не підтверджено
card-email = ✉️ { $email }
card-telegram = 💬 { $link }
card-telegram-profile = Профіль у Telegram
card-source = 🔗 Джерело: { $source }
card-answers-title = <b>Відповіді</b>
card-answer = • { $title }: { $value }
card-comment = • { $title }: <i>{ $value }</i>
card-score = 📊 Бали <b>{ $score }</b> · { $band } (відповідність { $fit }, намір { $intent })
card-rule = { "   " }· { $rule }: { $points }
card-rule-phone-verified = Підтверджений телефон
card-rule-phone-unverified = Телефон (не підтверджено)
card-rule-email = Вказано email
card-rule-source = Джерело: { $source }
card-rule-signal = Сигнал: { $signal }
card-signal-quick-answers = Швидкі відповіді
card-stage = 📍 Етап: <b>{ $stage }</b>
card-sla = ⏱ Наступний крок до { $deadline }
card-sla-overdue = ⏰ <b>Прострочено</b> з { $deadline }
card-lost-reason = ✖️ Причина: { $reason }
card-playbook = 📘 <i>{ $text }</i>
card-manager = 🧑‍💼 Менеджер: { $name }
card-manager-none = 🧑‍💼 Менеджер: <i>не призначено</i>
card-amount = 💰 Сума: { $amount }
card-created = 🕒 Створено: { $at }
card-history-title = <b>Історія</b>
card-history-entry = { $at } · { $who }: { $what }
card-more = …
card-actor-system = 🤖 бот
card-actor-prospect = 👤 клієнт
card-event-created = заявку створено (джерело: { $source })
card-event-stage = { $source } → { $target }
card-event-assign = взяв(-ла) заявку
card-event-handoff = передано менеджерам: { $reason }
card-event-signal = { $signal }
card-event-note = 📝 { $text }
card-event-amount = сума { $amount }
card-event-relay-in = написав: { $text }
card-event-relay-out = відповідь клієнтові: { $text }
card-event-erased = персональні дані видалено
card-event-unreachable = ⛔ клієнт заблокував бота
card-event-reachable = ✅ клієнт розблокував бота

## кнопки картки
card-btn-take = 🙋 Взяти
card-btn-move = ➡️ { $stage }
card-btn-won = 🏆 { $stage }
card-btn-lost = ✖️ { $stage }
card-btn-back = ⬅️ Назад

## відповіді на натискання кнопок (звичайний текст, до 200 символів)
staff-not-staff-chat = Ці кнопки й команди працюють лише в робочому чаті менеджерів.
staff-not-manager = Це можуть робити лише менеджери.
staff-lead-not-found = Заявку не знайдено.
staff-stale = Картка застаріла: заявка вже на етапі «{ $stage }». Картку буде оновлено.
staff-taken = ✅ Заявка ваша.
staff-already-taken = Заявку вже взяв(-ла) { $name }.
staff-already-yours = Ця заявка вже ваша.
staff-closed = Заявку вже закрито ({ $stage }).
staff-moved = Переведено в «{ $stage }».
staff-already-moved = Вже переведено в «{ $stage }» ({ $name }).
staff-by-bot = бот
staff-not-allowed = Не можна: заявку з етапу «{ $stage }» не переводять у «{ $target }».
staff-needs-reason = Оберіть причину, щоб позначити заявку втраченою.
staff-bad-reason = Невідома причина. Надішліть картку знову командою /lead з номером заявки.
staff-bad-button = Ця кнопка недійсна. Надішліть картку знову командою /lead з номером заявки.
staff-pick-reason = Чому заявку втрачено?
staff-back = Гаразд

## команди робочого чату
staff-reply-to-card = Надішліть цю команду відповіддю на картку заявки.
staff-note-empty = Напишіть нотатку після команди, наприклад: /note зателефонував, у понеділок надішлю пропозицію
staff-note-saved = 📝 Нотатку додано до заявки #{ $id }.
staff-amount-set = 💰 Сума заявки #{ $id }: { $amount }
staff-amount-empty = Вкажіть суму після команди, наприклад: /amount 12000 або /amount 12 000.50
staff-amount-garbage = Це не схоже на суму. Приклади: /amount 12000, /amount 12 000, /amount 12,000.50
staff-amount-negative = Сума не може бути від'ємною.
staff-amount-too-large = Завелика сума.
staff-lead-usage = Використання: /lead 42 (номер заявки)
staff-mine-empty = У вас немає відкритих заявок.
staff-mine-title = <b>Ваші відкриті заявки ({ $count })</b>
staff-mine-row = #{ $id } · { $name } · { $stage } · бали { $score }

## листування між клієнтом і менеджерами
staff-relay-in =
    💬 <b>Заявка #{ $id } · { $name }</b>
    { $text }
staff-manager-requested = 🔔 Клієнт заявки #{ $id } просить зв'язатися з менеджером.
staff-relay-sent = ✅ Надіслано клієнтові.
staff-relay-text-only = Клієнтові можна переслати лише текстове повідомлення.
staff-relay-anonymized = Не надіслано: клієнт видалив свої дані.
staff-relay-unreachable = Не надіслано: клієнт заблокував бота.
staff-relay-no-chat = Не надіслано: чат клієнта невідомий.
# бачить клієнт (його мовою)
staff-to-prospect =
    💬 <b>{ $manager }</b>, менеджер:
    { $text }
