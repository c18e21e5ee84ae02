from bot.main import run

run()
