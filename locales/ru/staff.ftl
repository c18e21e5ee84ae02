# Карточка заявки для менеджеров (bot/cards.py) и рабочий чат (handlers/staff.py).

## карточка
card-title = 📋 <b>Заявка #{ $id }</b>
card-why = ❗ { $reason }
card-why-qualified = Квалифицирована по баллам
card-why-manager = Клиент попросил менеджера
card-why-question = Клиент задал вопрос
card-why-signal = Сигнал: { $signal }
card-why-unknown = Передана менеджерам
card-anonymized = 🕶 Персональные данные удалены по просьбе клиента.
card-none = —
card-name = 👤 { $name }
card-phone-verified = 📞 { $phone } ✅ подтверждён
card-phone-unverified = 📞 { $phone } ⚠️ не подтверждён
card-email = ✉️ { $email }
card-telegram = 💬 { $link }
card-telegram-profile = Профиль в Telegram
card-source = 🔗 Источник: { $source }
card-answers-title = <b>Ответы</b>
card-answer = • { $title }: { $value }
card-comment = • { $title }: <i>{ $value }</i>
card-score = 📊 Баллы <b>{ $score }</b> · { $band } (соответствие { $fit }, намерение { $intent })
card-rule = { "   " }· { $rule }: { $points }
card-rule-phone-verified = Подтверждённый телефон
card-rule-phone-unverified = Телефон (не подтверждён)
card-rule-email = Указан email
card-rule-source = Источник: { $source }
card-rule-signal = Сигнал: { $signal }
card-signal-quick-answers = Быстрые ответы
card-stage = 📍 Этап: <b>{ $stage }</b>
card-sla = ⏱ Следующий шаг до { $deadline }
card-sla-overdue = ⏰ <b>Просрочено</b> с { $deadline }
card-lost-reason = ✖️ Причина: { $reason }
card-playbook = 📘 <i>{ $text }</i>
card-manager = 🧑‍💼 Менеджер: { $name }
card-manager-none = 🧑‍💼 Менеджер: <i>не назначен</i>
card-amount = 💰 Сумма: { $amount }
card-created = 🕒 Создана: { $at }
card-history-title = <b>История</b>
card-history-entry = { $at } · { $who }: { $what }
card-more = …
card-actor-system = 🤖 бот
card-actor-prospect = 👤 клиент
card-event-created = заявка создана (источник: { $source })
card-event-stage = { $source } → { $target }
card-event-assign = взял(а) заявку
card-event-handoff = передана менеджерам: { $reason }
card-event-signal = { $signal }
card-event-note = 📝 { $text }
card-event-amount = сумма { $amount }
card-event-relay-in = написал: { $text }
card-event-relay-out = ответ клиенту: { $text }
card-event-erased = персональные данные удалены
card-event-unreachable = ⛔ клиент заблокировал бота
card-event-reachable = ✅ клиент разблокировал бота

## кнопки карточки
card-btn-take = 🙋 Взять
card-btn-move = ➡️ { $stage }
card-btn-won = 🏆 { $stage }
card-btn-lost = ✖️ { $stage }
card-btn-back = ⬅️ Назад

## ответы на нажатия кнопок (обычный текст, до 200 символов)
staff-not-staff-chat = Эти кнопки и команды работают только в рабочем чате менеджеров.
staff-not-manager = Это могут делать только менеджеры.
staff-lead-not-found = Заявка не найдена.
staff-stale = Карточка устарела: заявка уже на этапе «{ $stage }». Карточка будет обновлена.
staff-taken = ✅ Заявка ваша.
staff-already-taken = Заявку уже взял(а) { $name }.
staff-already-yours = Эта заявка уже ваша.
staff-closed = Заявка уже закрыта ({ $stage }).
staff-moved = Переведено в «{ $stage }».
staff-already-moved = Уже переведено в «{ $stage }» ({ $name }).
staff-by-bot = бот
staff-not-allowed = Нельзя: заявку с этапа «{ $stage }» не переводят в «{ $target }».
staff-needs-reason = Выберите причину, чтобы отметить заявку потерянной.
staff-bad-reason = Неизвестная причина. Отправьте карточку заново командой /lead с номером заявки.
staff-bad-button = Эта кнопка недействительна. Отправьте карточку заново командой /lead с номером заявки.
staff-pick-reason = Почему заявка потеряна?
staff-back = Хорошо

## команды рабочего чата
staff-reply-to-card = Отправьте эту команду ответом на карточку заявки.
staff-note-empty = Напишите заметку после команды, например: /note позвонил, в понедельник отправлю предложение
staff-note-saved = 📝 Заметка добавлена к заявке #{ $id }.
staff-amount-set = 💰 Сумма заявки #{ $id }: { $amount }
staff-amount-empty = Укажите сумму после команды, например: /amount 12000 или /amount 12 000.50
staff-amount-garbage = Это не похоже на сумму. Примеры: /amount 12000, /amount 12 000, /amount 12,000.50
staff-amount-negative = Сумма не может быть отрицательной.
staff-amount-too-large = Слишком большая сумма.
staff-lead-usage = Использование: /lead 42 (номер заявки)
staff-mine-empty = У вас нет открытых заявок.
staff-mine-title = <b>Ваши открытые заявки ({ $count })</b>
staff-mine-row = #{ $id } · { $name } · { $stage } · баллы { $score }

## переписка между клиентом и менеджерами
staff-relay-in =
    💬 <b>Заявка #{ $id } · { $name }</b>
    { $text }
staff-manager-requested = 🔔 Клиент заявки #{ $id } просит связаться с менеджером.
staff-relay-sent = ✅ Отправлено клиенту.
staff-relay-text-only = Клиенту можно переслать только текстовое сообщение.
staff-relay-anonymized = Не отправлено: клиент удалил свои данные.
staff-relay-unreachable = Не отправлено: клиент заблокировал бота.
staff-relay-no-chat = Не отправлено: чат клиента неизвестен.
# видит клиент (на его языке)
staff-to-prospect =
    💬 <b>{ $manager }</b>, менеджер:
    { $text }
