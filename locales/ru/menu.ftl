# Меню клиента после диалога (handlers/menu.py).
menu-unavailable = Этот пункт меню больше недоступен.
menu-no-lead = У вас ещё нет открытой заявки. Отправьте /start, чтобы её оставить.
menu-demo-booked = Отлично! Менеджер скоро свяжется с вами, чтобы выбрать время для демо.
menu-ask-question = Напишите ваш вопрос следующим сообщением — менеджер ответит прямо здесь.
menu-manager-notified = Мы сообщили менеджеру — он скоро напишет вам здесь.
menu-question-sent = ✅ Ваш вопрос передан менеджеру. Ответ придёт сюда.
# after the handoff: what the prospect wrote went to their manager (not repeated for every message)
menu-relayed = ✅ Передано менеджеру. Ответ придёт сюда.
menu-unknown-command = Я не знаю такой команды. Отправьте /start, чтобы оставить заявку, или /help для справки.
menu-hint = Чтобы оставить заявку, отправьте /start.
menu-hint-menu = Ваша заявка уже у нас. Воспользуйтесь меню ниже: задайте вопрос или свяжитесь с менеджером.
# что клиент прислал вместо текста (видят менеджеры)
menu-media = { $kind ->
    [photo] 📷 [фото]
    [video] 🎬 [видео]
    [video_note] 🎥 [видеосообщение]
    [animation] 🎞 [GIF]
    [voice] 🎤 [голосовое сообщение]
    [audio] 🎵 [аудио]
    [document] 📎 [файл]
    [sticker] 🙂 [стикер]
    [contact] 👤 [контакт]
    [location] 📍 [геолокация]
    [venue] 📍 [место]
    [poll] 📊 [опрос]
    [dice] 🎲 [кубик]
   *[other] 📦 [вложение]
}
